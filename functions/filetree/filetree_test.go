package filetree

import (
	"os"
	"path/filepath"
	"testing"
)

// tree makes src with a file, an executable in a subdirectory and a relative symlink.
func tree(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "bin", "run"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("bin/run", filepath.Join(src, "run")); err != nil {
		t.Fatal(err)
	}
	return src
}

func TestCopyAndLinkRecreateTheTree(t *testing.T) {
	for name, recreate := range map[string]func(src, dst string) error{"copy": Copy, "link": Link} {
		t.Run(name, func(t *testing.T) {
			src := tree(t)
			dst := filepath.Join(t.TempDir(), "out")
			if err := recreate(src, dst); err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(filepath.Join(dst, "a.txt")); err != nil || string(b) != "a" {
				t.Errorf("a.txt = %q, %v", b, err)
			}
			if fi, err := os.Stat(filepath.Join(dst, "bin", "run")); err != nil || fi.Mode().Perm() != 0o755 {
				t.Errorf("bin/run: %v, %v; want mode 0755", fi, err)
			}
			if target, err := os.Readlink(filepath.Join(dst, "run")); err != nil || target != "bin/run" {
				t.Errorf("run -> %q, %v; want the symlink bin/run", target, err)
			}
		})
	}
}

func TestCopyRefusesExistingFiles(t *testing.T) {
	src := tree(t)
	dst := t.TempDir()
	if err := os.WriteFile(filepath.Join(dst, "a.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Copy(src, dst); err == nil {
		t.Fatal("Copy over an existing file succeeded")
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "a.txt")); string(b) != "mine" {
		t.Errorf("the existing file was overwritten: %q", b)
	}
}
