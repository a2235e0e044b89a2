package control

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/passeur/passeur/initramfs/event"
)

func TestHubStreamsBacklogThenNew(t *testing.T) {
	h := NewHub()
	em := event.NewEmitter(h)
	em.Emit("ready", map[string]float64{"uptime": 1})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go h.Serve(l)
	dial := func() (net.Conn, error) { return net.Dial("tcp", l.Addr().String()) }
	if typ, err := Check(dial); err != nil || typ != "ready" {
		t.Fatalf("Check = %q, %v", typ, err)
	}
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	first, _ := r.ReadString('\n')
	em.Emit("inventory", map[string]int{"disks": 0})
	second, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	for line, want := range map[string]string{first: "ready", second: "inventory"} {
		ev, ok, err := event.Parse(line)
		if !ok || err != nil || ev.Type != want {
			t.Errorf("line %q: want %s", line, want)
		}
	}
}

func TestCheckFailsOnSilence(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.Write([]byte("not an event\n"))
			c.Close()
		}
	}()
	if _, err := Check(func() (net.Conn, error) { return net.Dial("tcp", l.Addr().String()) }); err == nil {
		t.Error("Check against a server that sends no event: want an error")
	}
}
