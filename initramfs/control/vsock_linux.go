package control

import (
	"fmt"
	"net"

	"github.com/mdlayher/vsock"
)

// ListenVsock listens on the control port of every vsock transport: the
// host through virtio-vsock where it has vhost-vsock, and the guest itself
// through vsock_loopback (context ID 1), which the self-check uses.
func ListenVsock() (net.Listener, error) {
	l, err := vsock.Listen(Port, nil)
	if err != nil {
		return nil, fmt.Errorf("listen on vsock port %d: %w", Port, err)
	}
	return l, nil
}

// DialLocal connects to the control port through vsock_loopback.
func DialLocal() (net.Conn, error) { return vsock.Dial(vsock.Local, Port, nil) }
