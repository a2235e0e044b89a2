// Package control is the rescue system's channel for test harnesses and
// lab tooling: a read-only stream of every event the agent emitted, then
// each new one, to whoever connects (over vsock where the host has it).
package control

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/passeur/passeur/initramfs/event"
)

// Port is the vsock port the agent listens on.
const Port = 1024

// Hub keeps the events written to it and streams them to clients. It is
// an io.Writer: the agent's event emitter writes to it beside the console.
type Hub struct {
	mu    sync.Mutex
	lines [][]byte
	subs  map[chan []byte]bool
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: map[chan []byte]bool{}} }

// Write records one or more event lines and passes them to clients.
func (h *Hub) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, line := range bytes.SplitAfter(p, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		line = bytes.Clone(line)
		h.lines = append(h.lines, line)
		for ch := range h.subs {
			select {
			case ch <- line:
			default: // a client too slow to read loses lines, never the agent's time
			}
		}
	}
	return len(p), nil
}

// Serve streams to every client accepted on l until l is closed.
func (h *Hub) Serve(l net.Listener) error {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go h.stream(c)
	}
}

func (h *Hub) stream(c net.Conn) {
	defer c.Close()
	ch := make(chan []byte, 256)
	h.mu.Lock()
	backlog := append([][]byte(nil), h.lines...)
	h.subs[ch] = true
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.subs, ch)
		h.mu.Unlock()
	}()
	for _, line := range backlog {
		if _, err := c.Write(line); err != nil {
			return
		}
	}
	for line := range ch {
		if _, err := c.Write(line); err != nil {
			return
		}
	}
}

// Check connects with dial and reads the first event a client gets: the
// channel works end to end. It returns that event's type.
func Check(dial func() (net.Conn, error)) (string, error) {
	c, err := dial()
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read: %w", err)
	}
	ev, ok, err := event.Parse(strings.TrimSpace(line))
	if !ok || err != nil {
		return "", fmt.Errorf("first line %q is not an event (%v)", line, err)
	}
	return ev.Type, nil
}
