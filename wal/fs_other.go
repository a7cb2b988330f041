//go:build !unix

package wal

import (
	"errors"
	"io"
)

func lockDir(dir string) (io.Closer, error) {
	return nil, errors.New("wal: directory locking is only implemented on unix systems")
}
