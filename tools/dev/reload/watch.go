package reload

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch modes.
const (
	WatchAuto    = "auto"    // polling plus inotify where the file system raises events
	WatchPoll    = "poll"    // polling only
	WatchInotify = "inotify" // kernel file events only (fsnotify): fails where they are not available
)

// DefaultExcludes are never watched: version control, editor swap and backup
// files. Patterns match a file's base name or its slash-separated path
// relative to the watched directory (path.Match syntax). It returns a new
// slice on every call.
func DefaultExcludes() []string {
	return []string{
		".git", ".hg", ".svn", ".jj", ".idea", ".vscode",
		"*.swp", "*.swo", "*.swx", "*.swpx", ".*.kate-swp", "4913", // vim writes 4913 to probe permissions
		"*~", "#*#", ".#*", "*.bak", "*.orig", "*.tmp", ".DS_Store",
	}
}

// fileState is what a poll compares. mtime alone misses a same-second
// rewrite on file systems with coarse timestamps, so size and mode count too.
type fileState struct {
	size  int64
	mtime int64
	mode  fs.FileMode
}

type snapshot struct {
	files map[string]fileState // slash paths relative to the root
	dirs  []string             // absolute paths, for the notifier's watches
}

// watcher reports the files changed in a directory tree, in batches: a burst
// of saves that ends with debounce of quiet becomes one batch.
type watcher struct {
	root     string
	excludes []string
	mode     string
	interval time.Duration
	debounce time.Duration
	logger   *slog.Logger
	prev     snapshot
}

func newWatcher(root string, excludes []string, mode string, interval, debounce time.Duration, logger *slog.Logger) (*watcher, error) {
	w := &watcher{root: root, excludes: excludes, mode: mode, interval: interval, debounce: debounce, logger: logger}
	snap, err := w.scan()
	if err != nil {
		return nil, err
	}
	w.prev = snap
	return w, nil
}

func (w *watcher) excluded(rel string) bool {
	base := path.Base(rel)
	for _, pat := range w.excludes {
		if ok, _ := path.Match(pat, base); ok {
			return true
		}
		if ok, _ := path.Match(pat, rel); ok {
			return true
		}
		// A directory pattern such as "web/node_modules" excludes its contents.
		if strings.HasPrefix(rel, strings.TrimSuffix(pat, "/")+"/") {
			return true
		}
	}
	return false
}

// scan walks the tree without following symbolic links.
func (w *watcher) scan() (snapshot, error) {
	snap := snapshot{files: map[string]fileState{}}
	err := filepath.WalkDir(w.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			// A file removed while walking is a change the next scan sees.
			if errors.Is(err, fs.ErrNotExist) && p != w.root {
				return nil
			}
			return err
		}
		rel, err := filepath.Rel(w.root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel != "." && w.excluded(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			snap.dirs = append(snap.dirs, p)
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		snap.files[rel] = fileState{size: info.Size(), mtime: info.ModTime().UnixNano(), mode: info.Mode()}
		return nil
	})
	if err != nil {
		return snap, fmt.Errorf("scan %s: %w", w.root, err)
	}
	return snap, nil
}

// diff lists the paths added, removed or modified since the previous scan.
func diff(prev, cur map[string]fileState) []string {
	var changed []string
	for p, st := range cur {
		if old, ok := prev[p]; !ok || old != st {
			changed = append(changed, p)
		}
	}
	for p := range prev {
		if _, ok := cur[p]; !ok {
			changed = append(changed, p)
		}
	}
	slices.Sort(changed)
	return changed
}

// run sends batches of changed paths on out until ctx ends. It keeps
// scanning while the receiver is busy, so saves made during a build gather
// into the next batch.
func (w *watcher) run(ctx context.Context, out chan<- []string) error {
	var pollC <-chan time.Time
	if w.mode != WatchInotify {
		t := time.NewTicker(w.interval)
		defer t.Stop()
		pollC = t.C
	}

	var events <-chan fsnotify.Event
	var eventErrs <-chan error
	var ino *notifier
	if w.mode != WatchPoll {
		var err error
		ino, err = newNotifier()
		if err != nil {
			if w.mode == WatchInotify {
				return fmt.Errorf("file events: %w", err)
			}
			w.logger.Warn("file events unavailable, polling only", "error", err)
		} else {
			defer ino.close()
			events, eventErrs = ino.w.Events, ino.w.Errors
		}
	}

	quiet := time.NewTimer(time.Hour)
	quiet.Stop()
	defer quiet.Stop()
	if ino != nil && ino.sync(w.prev.dirs) {
		// A file saved between the first scan and its directory's watch
		// raised no event: one more scan finds it.
		quiet.Reset(w.debounce)
	}

	pending := map[string]bool{}
	ready := false // pending has had its quiet period and may be sent
	rescan := func() {
		snap, err := w.scan()
		if err != nil {
			w.logger.Warn("scan failed", "error", err)
			return
		}
		changed := diff(w.prev.files, snap.files)
		w.prev = snap
		// Same for a new directory: files written into it before its
		// watch existed are found by the next scan.
		newDirs := ino != nil && ino.sync(snap.dirs)
		for _, p := range changed {
			pending[p] = true
		}
		if (len(changed) > 0 && !ready) || newDirs {
			// Polling sees the end state of a burst; a short quiet period
			// after the first sighting catches the rest of it.
			quiet.Reset(w.debounce)
		}
	}

	for {
		var sendC chan<- []string
		var batch []string
		if ready {
			sendC = out
			for p := range pending {
				batch = append(batch, p)
			}
			slices.Sort(batch)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-pollC:
			rescan()
		case ev := <-events:
			ino.saw(ev)
			// An editor's swap file, written as you type, is no reason
			// to put off the build.
			if rel, err := filepath.Rel(w.root, ev.Name); err == nil && w.excluded(filepath.ToSlash(rel)) {
				continue
			}
			quiet.Reset(w.debounce)
		case err := <-eventErrs:
			// Events were lost (a queue overflow): a rescan finds
			// whatever they were about.
			w.logger.Warn("file events", "error", err)
			quiet.Reset(w.debounce)
		case <-quiet.C:
			rescan()
			ready = len(pending) > 0
		case sendC <- batch:
			clear(pending)
			ready = false
		}
	}
}
