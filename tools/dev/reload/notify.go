package reload

import "github.com/fsnotify/fsnotify"

// notifier turns the kernel's file events (inotify on Linux, through
// fsnotify) into wake-ups. The watcher does not trust their file names: a
// wake-up makes it rescan, so the change list, excludes and debouncing are
// the same as for polling. Where a mount never raises events (minikube's 9p
// mount) polling still sees the change.
//
// A watch covers one directory, not a tree: sync adds one for every
// directory a scan finds and forgets those that went away, so a new
// directory is watched from the scan that finds it, and a directory
// re-created under the same name is watched again.
type notifier struct {
	w       *fsnotify.Watcher
	watched map[string]bool // absolute directory paths
}

func newNotifier() (*notifier, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	return &notifier{w: w, watched: map[string]bool{}}, nil
}

// sync watches each of dirs not watched yet and stops watching the others;
// it reports whether it added a watch.
func (n *notifier) sync(dirs []string) (added bool) {
	present := make(map[string]bool, len(dirs))
	for _, d := range dirs {
		present[d] = true
	}
	// Removals first: a renamed directory keeps its kernel watch, which
	// removing the old name after adding the new one would take away.
	for d := range n.watched {
		if !present[d] {
			delete(n.watched, d)
			_ = n.w.Remove(d) // most often already gone with the directory
		}
	}
	for _, d := range dirs {
		if n.watched[d] {
			continue
		}
		// A directory removed since the scan fails here and is not
		// listed by the next scan; polling covers any other failure.
		if err := n.w.Add(d); err == nil {
			n.watched[d] = true
			added = true
		}
	}
	return added
}

// saw notes that a removed or renamed path lost its watch, if it had one,
// so that the next sync watches a directory of that name again.
func (n *notifier) saw(ev fsnotify.Event) {
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		delete(n.watched, ev.Name)
	}
}

func (n *notifier) close() { _ = n.w.Close() }
