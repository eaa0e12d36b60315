package oci

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"

	"github.com/skiff-dev/skiff/controlplane/runtime/containerenv"
)

// defaultPath is the PATH an image without one runs with (containerd's and Docker's default).
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// defaultCapabilities are the capabilities a container gets unless its securityContext adds or
// drops some: containerd's (and so the kubelet's) default set.
var defaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// commandLine is what the container runs, by Kubernetes' rules for command and args against the
// image's entrypoint and cmd: command replaces the entrypoint and drops the image's cmd, args
// replace the cmd. $(VAR) references in command and args are expanded with lookup.
func commandLine(img v1.Config, c *corev1.Container, lookup func(string) (string, bool)) ([]string, error) {
	// Only what the container spec says is expanded, not the image's own entrypoint and cmd.
	ex := func(in []string) []string {
		out := make([]string, len(in))
		for i, a := range in {
			out[i] = containerenv.Expand(a, lookup)
		}
		return out
	}
	var argv []string
	switch {
	case len(c.Command) > 0:
		argv = append(ex(c.Command), ex(c.Args)...)
	case len(c.Args) > 0:
		argv = append(slices.Clone(img.Entrypoint), ex(c.Args)...)
	default:
		argv = append(slices.Clone(img.Entrypoint), img.Cmd...)
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("the image has no entrypoint or cmd and the container sets no command")
	}
	return argv, nil
}

// user is who the container's process runs as.
type user struct {
	uid, gid uint32
	groups   []uint32
	home     string
}

// resolveUser decides the process's user as the kubelet and containerd do: runAsUser (the
// container's, else the pod's; its primary group from /etc/passwd) instead of the image's USER
// ("uid", "uid:gid", "name", "name:group", names looked up in the root filesystem's /etc/passwd
// and /etc/group), root when neither says; runAsGroup over the primary group; supplementary
// groups from /etc/group and the pod's supplementalGroups. runAsNonRoot refuses uid 0.
func resolveUser(rootfs, imageUser string, c *corev1.SecurityContext, pod *corev1.PodSecurityContext) (user, error) {
	runAsUser, runAsGroup, nonRoot := (*int64)(nil), (*int64)(nil), (*bool)(nil)
	if pod != nil {
		runAsUser, runAsGroup, nonRoot = pod.RunAsUser, pod.RunAsGroup, pod.RunAsNonRoot
	}
	if c != nil {
		if c.RunAsUser != nil {
			runAsUser = c.RunAsUser
		}
		if c.RunAsGroup != nil {
			runAsGroup = c.RunAsGroup
		}
		if c.RunAsNonRoot != nil {
			nonRoot = c.RunAsNonRoot
		}
	}
	u := user{home: "/"}
	name := ""
	byUID := func() {
		if e, ok := lookupPasswd(rootfs, func(e passwdEntry) bool { return e.uid == u.uid }); ok {
			u.gid, u.home, name = e.gid, e.home, e.name
		}
	}
	switch {
	case runAsUser != nil: // the image's USER is ignored, as by containerd's WithUserID
		u.uid = uint32(*runAsUser)
		byUID()
	case imageUser != "":
		uname, group, hasGroup := strings.Cut(imageUser, ":")
		if id, err := strconv.ParseUint(uname, 10, 32); err == nil {
			u.uid = uint32(id)
			byUID()
		} else {
			e, ok := lookupPasswd(rootfs, func(e passwdEntry) bool { return e.name == uname })
			if !ok {
				return u, fmt.Errorf("the image's user %q is not in its /etc/passwd", uname)
			}
			u.uid, u.gid, u.home, name = e.uid, e.gid, e.home, e.name
		}
		if hasGroup {
			if id, err := strconv.ParseUint(group, 10, 32); err == nil {
				u.gid = uint32(id)
			} else {
				g, ok := lookupGroup(rootfs, func(g groupEntry) bool { return g.name == group })
				if !ok {
					return u, fmt.Errorf("the image's group %q is not in its /etc/group", group)
				}
				u.gid = g.gid
			}
		}
	default:
		byUID()
	}
	if runAsGroup != nil {
		u.gid = uint32(*runAsGroup)
	}
	if nonRoot != nil && *nonRoot && u.uid == 0 {
		return u, fmt.Errorf("container has runAsNonRoot and image will run as root")
	}
	if name != "" {
		for _, g := range groupsOf(rootfs, name) {
			if g != u.gid && !slices.Contains(u.groups, g) {
				u.groups = append(u.groups, g)
			}
		}
	}
	if pod != nil {
		for _, g := range pod.SupplementalGroups {
			if !slices.Contains(u.groups, uint32(g)) {
				u.groups = append(u.groups, uint32(g))
			}
		}
	}
	return u, nil
}

type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// readLines reads a file of the root filesystem without following symlinks out of it.
func readLines(rootfs, name string) []string {
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return nil
	}
	defer root.Close()
	f, err := root.Open(name)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func lookupPasswd(rootfs string, match func(passwdEntry) bool) (passwdEntry, bool) {
	for _, l := range readLines(rootfs, "etc/passwd") {
		f := strings.Split(l, ":")
		if len(f) < 7 {
			continue
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		e := passwdEntry{name: f[0], uid: uint32(uid), gid: uint32(gid), home: f[5]}
		if match(e) {
			return e, true
		}
	}
	return passwdEntry{}, false
}

func lookupGroup(rootfs string, match func(groupEntry) bool) (groupEntry, bool) {
	for _, g := range groups(rootfs) {
		if match(g) {
			return g, true
		}
	}
	return groupEntry{}, false
}

func groups(rootfs string) []groupEntry {
	var out []groupEntry
	for _, l := range readLines(rootfs, "etc/group") {
		f := strings.Split(l, ":")
		if len(f) < 4 {
			continue
		}
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			continue
		}
		g := groupEntry{name: f[0], gid: uint32(gid)}
		if f[3] != "" {
			g.members = strings.Split(f[3], ",")
		}
		out = append(out, g)
	}
	return out
}

func groupsOf(rootfs, name string) []uint32 {
	var out []uint32
	for _, g := range groups(rootfs) {
		if slices.Contains(g.members, name) {
			out = append(out, g.gid)
		}
	}
	return out
}

// capabilities are the container's capabilities: the default set with securityContext's
// drop ("ALL" drops every one) then add applied, as containerd does.
func capabilities(sc *corev1.SecurityContext) []string {
	caps := slices.Clone(defaultCapabilities)
	if sc == nil || sc.Capabilities == nil {
		return caps
	}
	norm := func(c corev1.Capability) string {
		s := strings.ToUpper(string(c))
		if s != "ALL" && !strings.HasPrefix(s, "CAP_") {
			s = "CAP_" + s
		}
		return s
	}
	for _, d := range sc.Capabilities.Drop {
		if n := norm(d); n == "ALL" {
			caps = nil
		} else {
			caps = slices.DeleteFunc(caps, func(c string) bool { return c == n })
		}
	}
	for _, a := range sc.Capabilities.Add {
		if n := norm(a); n != "ALL" && !slices.Contains(caps, n) {
			caps = append(caps, n)
		}
	}
	return caps
}

// instanceSpec is everything one instance's OCI spec is made of.
type instanceSpec struct {
	hostname     string
	args         []string
	env          []string
	cwd          string
	user         user
	caps         []string
	noNewPrivs   bool
	readOnlyRoot bool
	mounts       []specs.Mount // volumes and /etc files, after the defaults
	resources    *specs.LinuxResources
	cgroupsPath  string // "" leaves the container in the runtime's cgroup
}

// ociSpec is the runtime spec runc runs an instance with: runc's own defaults (mounts, masked
// and read-only paths), the host's network namespace (the proxy reaches the instance on
// loopback; see the package doc), its own pid, ipc, uts and mount namespaces.
func ociSpec(in instanceSpec) *specs.Spec {
	nofile := uint64(1 << 20)
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Max < nofile {
		nofile = rl.Max
	}
	s := &specs.Spec{
		Version:  "1.0.2",
		Root:     &specs.Root{Path: "rootfs", Readonly: in.readOnlyRoot},
		Hostname: in.hostname,
		Process: &specs.Process{
			Args: in.args, Env: in.env, Cwd: in.cwd,
			User: specs.User{UID: in.user.uid, GID: in.user.gid, AdditionalGids: in.user.groups},
			Capabilities: &specs.LinuxCapabilities{
				Bounding: in.caps, Effective: in.caps, Permitted: in.caps,
			},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: nofile, Soft: nofile}},
			NoNewPrivileges: in.noNewPrivs,
		},
		Mounts: append([]specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		}, in.mounts...),
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
			},
			Resources:   &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}},
			CgroupsPath: in.cgroupsPath,
			MaskedPaths: []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
			},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	if r := in.resources; r != nil {
		s.Linux.Resources.Memory = r.Memory
		s.Linux.Resources.CPU = r.CPU
		s.Linux.Resources.Pids = r.Pids
	}
	return s
}

// bindMount is a read-only (or not) bind mount of a host path.
func bindMount(dst, src string, readOnly bool) specs.Mount {
	opts := []string{"rbind", "nosuid", "nodev"}
	if readOnly {
		opts = append(opts, "ro")
	}
	return specs.Mount{Destination: dst, Type: "bind", Source: src, Options: opts}
}

// cleanDest checks a mount destination: absolute, no "..".
func cleanDest(p string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("%q is not an absolute path", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", fmt.Errorf("%q must not contain '..'", p)
		}
	}
	return filepath.Clean(p), nil
}
