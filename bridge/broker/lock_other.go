//go:build !unix

package broker

// dirLock is a no-op where flock(2) does not exist; run one bridge process
// per data_dir there.
type dirLock struct{}

func lockDir(dir string) (*dirLock, error) { return &dirLock{}, nil }

func (l *dirLock) release() error { return nil }
