package logging

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"testing"
	"time"
)

// TestJSONHandlerWritesWhatSlogWrites: for every kind of value the fast
// handler must produce byte-for-byte the line slog.JSONHandler produces.
func TestJSONHandlerWritesWhatSlogWrites(t *testing.T) {
	at := time.Date(2026, 11, 25, 17, 49, 35, 93550108, time.UTC)
	records := map[string][]slog.Attr{
		"access line": {slog.String("method", "GET"), slog.String("path", "/"), slog.Int("status", 200),
			slog.Int64("bytes", 21), slog.Float64("duration_ms", 0.041), slog.String("remote", "127.0.0.1:51254")},
		"escapes":     {slog.String("path", "/a\"b\\c\n\r\t\x01\x7f<>&"), slog.String("k\"ey", "v")},
		"unicode":     {slog.String("s", "héllo \u2028 \u2029 ✓"), slog.String("bad", "a\xffb\xc3")},
		"numbers":     {slog.Uint64("u", math.MaxUint64), slog.Float64("f", 1e21), slog.Float64("g", 1.5e-7), slog.Float64("nan", math.NaN()), slog.Float64("inf", math.Inf(-1))},
		"other kinds": {slog.Bool("b", true), slog.Duration("d", 1500*time.Millisecond), slog.Time("t", at), slog.Any("err", errors.New("boom")), slog.Any("m", map[string]int{"a": 1}), slog.Any("nil", nil)},
		"group":       {slog.Group("g", slog.String("a", "b"))},
		"empty key":   {slog.String("", "dropped"), slog.String("k", "v")},
		"no attrs":    nil,
	}
	for name, attrs := range records {
		t.Run(name, func(t *testing.T) {
			var want, got bytes.Buffer
			opts := &slog.HandlerOptions{Level: slog.LevelDebug}
			for _, h := range []struct {
				h   slog.Handler
				out *bytes.Buffer
			}{{slog.NewJSONHandler(&want, opts), &want}, {newJSONHandler(&got, opts), &got}} {
				r := slog.NewRecord(at, slog.LevelWarn, "msg \"quoted\"", 0)
				r.AddAttrs(attrs...)
				if err := h.h.Handle(context.Background(), r); err != nil {
					t.Fatal(err)
				}
			}
			if got.String() != want.String() {
				t.Fatalf("fast handler wrote\n%s\nslog wrote\n%s", got.String(), want.String())
			}
		})
	}
}

func TestJSONHandlerWithAttrsAndLevel(t *testing.T) {
	var out bytes.Buffer
	h := newJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo})
	if h.Enabled(context.Background(), slog.LevelDebug) {
		t.Error("debug enabled at level info")
	}
	slog.New(h).With("component", "x").Info("hi")
	if want := `"msg":"hi","component":"x"}`; !bytes.Contains(out.Bytes(), []byte(want)) {
		t.Fatalf("WithAttrs lost: %s", out.String())
	}
}

func BenchmarkAccessLine(b *testing.B) {
	for name, h := range map[string]slog.Handler{
		"slog.JSONHandler": slog.NewJSONHandler(io.Discard, nil),
		"fast":             newJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}),
	} {
		b.Run(name, func(b *testing.B) {
			l := slog.New(h)
			for b.Loop() {
				l.LogAttrs(context.Background(), slog.LevelInfo, "request",
					slog.String("method", "GET"), slog.String("path", "/"), slog.Int("status", 200),
					slog.Int64("bytes", 21), slog.Float64("duration_ms", 0.012), slog.String("remote", "127.0.0.1:45678"))
			}
		})
	}
}

func BenchmarkAccessLineDirect(b *testing.B) {
	h := newJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})
	for b.Loop() {
		r := slog.NewRecord(time.Now(), slog.LevelInfo, "request", 0)
		r.AddAttrs(slog.String("method", "GET"), slog.String("path", "/"), slog.Int("status", 200),
			slog.Int64("bytes", 21), slog.Float64("duration_ms", 0.012), slog.String("remote", "127.0.0.1:45678"))
		h.Handle(context.Background(), r)
	}
}
