package reload

import "testing"

func TestEpollWatches(t *testing.T) {
	info := []byte("pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\n" +
		"tfd:        5 events:       19 data:                5  pos:0 ino:2f4a sdev:8\n" +
		"tfd:        3 events: 80000019 data:                3  pos:0 ino:1b3e sdev:8\n")
	if !epollWatches(info, 0x1b3e) {
		t.Error("socket inode 0x1b3e not found")
	}
	if epollWatches(info, 0x1057) {
		t.Error("the epoll file's own inode counted as a watched socket")
	}
}
