package persistence

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// FS is the file layer the log uses, so tests can inject failures (ENOSPC,
// EIO, slow fsync).
//
// A log file is opened for appending only when the manifest names it as the
// last one: every other log file is new, made by CreateNew, which never
// appends to or truncates a file that is already there.
type FS interface {
	OpenAppend(path string) (File, error) // open an existing file for appending
	CreateNew(path string) (File, error)  // create a file for appending; fails if it exists
	Create(path string) (File, error)     // create or truncate for writing (the manifest's temporary file)
	ReadFile(path string) ([]byte, error)
	ReadDir(dir string) ([]fs.DirEntry, error)
	Rename(from, to string) error
	Remove(path string) error
	Truncate(path string, size int64) error
	SyncDir(dir string) error
	MkdirAll(dir string) error
}

// File is an open log file.
type File interface {
	io.Writer
	Sync() error
	Truncate(size int64) error
	Close() error
}

// OSFS is the real file system.
type OSFS struct{}

var _ FS = OSFS{}

func (OSFS) OpenAppend(path string) (File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
}
func (OSFS) CreateNew(path string) (File, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o644)
}
func (OSFS) ReadDir(dir string) ([]fs.DirEntry, error) { return os.ReadDir(dir) }
func (OSFS) Create(path string) (File, error)          { return os.Create(path) }
func (OSFS) ReadFile(path string) ([]byte, error)      { return os.ReadFile(path) }
func (OSFS) Rename(from, to string) error              { return os.Rename(from, to) }
func (OSFS) Remove(path string) error                  { return os.Remove(path) }
func (OSFS) Truncate(path string, size int64) error    { return os.Truncate(path, size) }
func (OSFS) MkdirAll(dir string) error                 { return os.MkdirAll(dir, 0o755) }

// SyncDir fsyncs a directory so a rename in it is durable.
func (OSFS) SyncDir(dir string) error {
	d, err := os.Open(filepath.Clean(dir))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
