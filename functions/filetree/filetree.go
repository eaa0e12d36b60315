// Package filetree recreates directory trees: copies of a template or repository, and hard
// linked views of cached dependencies.
package filetree

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Copy copies the directory src to dst (whose files must not exist yet), keeping modes and
// symlinks.
func Copy(src, dst string) error {
	return walk(src, dst, func(p, out string, mode fs.FileMode) error {
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		f, err := os.OpenFile(out, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode.Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, in); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
}

// Link recreates the tree src at dst with hard links to src's files (copies when the two are
// on different file systems) and the same symlinks.
func Link(src, dst string) error {
	return walk(src, dst, func(p, out string, mode fs.FileMode) error {
		if err := os.Link(p, out); err == nil {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, data, mode.Perm())
	})
}

// walk recreates src's directories and symlinks at dst and calls file for each regular file;
// other kinds of file (devices, sockets) are skipped.
func walk(src, dst string, file func(p, out string, mode fs.FileMode) error) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(out, info.Mode().Perm()|0o700)
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, out)
		case !info.Mode().IsRegular():
			return nil
		}
		return file(p, out, info.Mode())
	})
}
