//go:build !unix

package engine

import (
	"errors"
	"os"
)

func lockFileExclusive(f *os.File) (bool, error) {
	return false, errors.New("locking the data directory is only implemented on unix systems")
}
