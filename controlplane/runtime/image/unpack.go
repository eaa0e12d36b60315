package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// OCI whiteout names (image-spec layer.md); overlayfs's equivalents are a 0/0 character
// device and the trusted.overlay.opaque xattr.
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
	opaqueXattr    = "trusted.overlay.opaque"
)

// unpackStats is what unpacking one layer found.
type unpackStats struct {
	compressed   string // sha256:... of the bytes read from the registry
	uncompressed string // sha256:... of the tar stream: the layer's diff ID
	size         int64  // bytes of regular files written
}

// hashingReader hashes and counts what is read through it.
type hashingReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

func (h *hashingReader) digest() string { return "sha256:" + hex.EncodeToString(h.h.Sum(nil)) }

// unpackLayer reads a layer blob (gzip, zstd or plain tar) from r and writes it into dir (which
// must exist and be empty) in overlayfs's layer format, refusing any entry that would land
// outside dir. It reads r to its end, so the caller can check the digests it returns; limit
// bounds the bytes of files it writes (0: none).
func unpackLayer(r io.Reader, dir string, limit int64) (unpackStats, error) {
	compressed := &hashingReader{r: r, h: sha256.New()}
	br := bufio.NewReader(compressed)
	magic, _ := br.Peek(4)
	var tarStream io.Reader = br
	var closeDec func()
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return unpackStats{}, fmt.Errorf("reading the layer's gzip header: %w", err)
		}
		zr.Multistream(true)
		tarStream, closeDec = zr, func() { zr.Close() }
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return unpackStats{}, fmt.Errorf("reading the layer's zstd header: %w", err)
		}
		tarStream, closeDec = zr, zr.Close
	}
	if closeDec != nil {
		defer closeDec()
	}
	uncompressed := &hashingReader{r: tarStream, h: sha256.New()}
	size, err := untar(uncompressed, dir, limit)
	if err != nil {
		// Read on, so the caller can tell a corrupt download (digest mismatch) from a bad archive.
		if _, derr := io.Copy(io.Discard, br); derr != nil {
			return unpackStats{}, fmt.Errorf("%w (the archive was unreadable: %v)", derr, err)
		}
		return unpackStats{compressed: compressed.digest()}, err
	}
	// The tar's end marker may leave padding unread; the digests cover every byte.
	if _, err := io.Copy(io.Discard, uncompressed); err != nil {
		return unpackStats{}, fmt.Errorf("reading the rest of the layer: %w", err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return unpackStats{}, fmt.Errorf("reading the rest of the layer: %w", err)
	}
	return unpackStats{compressed: compressed.digest(), uncompressed: uncompressed.digest(), size: size}, nil
}

// errTooLarge is returned by untar when the layer's files exceed the limit.
var errTooLarge = errors.New("the layer is larger than the image cache may hold")

// untar writes a tar stream into dir, converting whiteouts to overlayfs's format.
func untar(r io.Reader, dir string, limit int64) (int64, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return 0, fmt.Errorf("opening the layer directory: %w", err)
	}
	defer root.Close()
	type dirTimes struct {
		name  string
		mtime time.Time
	}
	var dirs []dirTimes
	var total int64
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("reading the layer's archive: %w", err)
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return 0, err
		}
		if name == "." {
			if hdr.Typeflag == tar.TypeDir {
				dirs = append(dirs, dirTimes{".", hdr.ModTime})
				if err := setAttrs(root, ".", hdr); err != nil {
					return 0, err
				}
			}
			continue
		}
		parent, base := path.Split(name)
		parent = strings.TrimSuffix(parent, "/")
		if parent == "" {
			parent = "."
		}
		if err := root.MkdirAll(parent, 0o755); err != nil {
			return 0, fmt.Errorf("layer entry %s: creating its directory: %w", hdr.Name, err)
		}
		switch {
		case base == whiteoutOpaque:
			if err := withDir(root, parent, func(fd int) error {
				return unix.Fsetxattr(fd, opaqueXattr, []byte("y"), 0)
			}); err != nil {
				return 0, fmt.Errorf("layer entry %s: marking %s opaque: %w", hdr.Name, parent, err)
			}
			continue
		case strings.HasPrefix(base, whiteoutPrefix):
			hidden := strings.TrimPrefix(base, whiteoutPrefix)
			if hidden == "" || hidden == "." || hidden == ".." {
				return 0, fmt.Errorf("layer entry %s: a whiteout must name a file", hdr.Name)
			}
			_ = root.RemoveAll(path.Join(parent, hidden))
			if err := withDir(root, parent, func(fd int) error {
				return unix.Mknodat(fd, hidden, unix.S_IFCHR|0o000, 0)
			}); err != nil {
				return 0, fmt.Errorf("layer entry %s: writing the whiteout of %s: %w", hdr.Name, hidden, err)
			}
			continue
		}
		// A later entry replaces an earlier one; a directory stays and merges.
		if fi, err := root.Lstat(name); err == nil && !(fi.IsDir() && hdr.Typeflag == tar.TypeDir) {
			if err := root.RemoveAll(name); err != nil {
				return 0, fmt.Errorf("layer entry %s: replacing it: %w", hdr.Name, err)
			}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.Mkdir(name, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return 0, fmt.Errorf("layer entry %s: %w", hdr.Name, err)
			}
			dirs = append(dirs, dirTimes{name, hdr.ModTime})
		case tar.TypeReg, tar.TypeRegA:
			total += hdr.Size
			if limit > 0 && total > limit {
				return 0, errTooLarge
			}
			f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return 0, fmt.Errorf("layer entry %s: %w", hdr.Name, err)
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return 0, fmt.Errorf("layer entry %s: writing it: %w", hdr.Name, err)
			}
		case tar.TypeSymlink:
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return 0, fmt.Errorf("layer entry %s: %w", hdr.Name, err)
			}
		case tar.TypeLink:
			target, err := cleanName(hdr.Linkname)
			if err != nil {
				return 0, err
			}
			if err := root.Link(target, name); err != nil {
				return 0, fmt.Errorf("layer entry %s: hard link to %s (which must be in the same layer): %w", hdr.Name, hdr.Linkname, err)
			}
			continue // a hard link shares its target's attributes
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			mode := uint32(unix.S_IFIFO)
			switch hdr.Typeflag {
			case tar.TypeChar:
				mode = unix.S_IFCHR
			case tar.TypeBlock:
				mode = unix.S_IFBLK
			}
			if err := withDir(root, parent, func(fd int) error {
				return unix.Mknodat(fd, base, mode|uint32(hdr.Mode&0o7777), int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))))
			}); err != nil {
				return 0, fmt.Errorf("layer entry %s: %w", hdr.Name, err)
			}
		default:
			continue // e.g. PAX global headers: nothing to write
		}
		if err := setAttrs(root, name, hdr); err != nil {
			return 0, err
		}
	}
	// Directory times last: writing their entries changed them.
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = root.Chtimes(dirs[i].name, dirs[i].mtime, dirs[i].mtime)
	}
	return total, nil
}

// setAttrs gives an entry its owner, mode and modification time (a symlink only its owner).
func setAttrs(root *os.Root, name string, hdr *tar.Header) error {
	if err := root.Lchown(name, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("layer entry %s: setting its owner: %w", hdr.Name, err)
	}
	if hdr.Typeflag == tar.TypeSymlink {
		return nil
	}
	// After the chown, which clears setuid and setgid.
	if err := root.Chmod(name, fs.FileMode(hdr.Mode&0o777)|modeBits(hdr.Mode)); err != nil {
		return fmt.Errorf("layer entry %s: setting its mode: %w", hdr.Name, err)
	}
	if hdr.Typeflag != tar.TypeDir {
		_ = root.Chtimes(name, hdr.ModTime, hdr.ModTime)
	}
	return nil
}

// modeBits converts the setuid, setgid and sticky bits of a tar mode to Go's.
func modeBits(m int64) fs.FileMode {
	var out fs.FileMode
	if m&0o4000 != 0 {
		out |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= fs.ModeSticky
	}
	return out
}

// withDir calls fn with a descriptor of the directory name inside root.
func withDir(root *os.Root, name string, fn func(fd int) error) error {
	d, err := root.Open(name)
	if err != nil {
		return err
	}
	defer d.Close()
	return fn(int(d.Fd()))
}

// cleanName makes a tar entry's name relative to the layer's root, refusing names that climb
// out of it.
func cleanName(name string) (string, error) {
	n := path.Clean("/" + name)
	if strings.Contains(name, "\x00") {
		return "", fmt.Errorf("layer entry %q: invalid name", name)
	}
	rel := strings.TrimPrefix(n, "/")
	if rel == "" {
		return ".", nil
	}
	for _, part := range strings.Split(path.Clean(name), "/") {
		if part == ".." {
			return "", fmt.Errorf("layer entry %q: names a path outside the layer", name)
		}
	}
	return rel, nil
}
