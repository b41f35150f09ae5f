//go:build unix && !linux

package reload

import "errors"

type inotify struct{ events chan struct{} }

func newInotify() (*inotify, error) { return nil, errors.New("not available on this system") }
func (in *inotify) sync([]string)   {}
func (in *inotify) close()          {}
