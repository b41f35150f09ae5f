//go:build unix && !linux

package reload

import "errors"

type inotify struct{ events chan struct{} }

func newInotify() (*inotify, error)    { return nil, errors.New("not available on this system") }
func (in *inotify) sync([]string) bool { return false }
func (in *inotify) close()             {}
