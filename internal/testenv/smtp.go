package testenv

import (
	"io"
	"net"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"
)

// SMTPReceiver is a private SMTP server on 127.0.0.1 (go-smtp's, speaking the
// real protocol) that keeps every message it is sent.
type SMTPReceiver struct {
	Addr string

	mu       sync.Mutex
	messages []SMTPMessage
	arrived  chan struct{}
}

// SMTPMessage is one message a receiver took.
type SMTPMessage struct {
	From string
	To   []string
	Data string
}

// StartSMTP starts a receiver for t, stopped in t.Cleanup. It offers no TLS
// and no authentication: clients use tls: none.
func StartSMTP(t testing.TB) *SMTPReceiver {
	t.Helper()
	r := &SMTPReceiver{arrived: make(chan struct{}, 1000)}
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &smtpSession{r: r}, nil }))
	s.Domain = "localhost"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtp receiver: %v", err)
	}
	r.Addr = l.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(l)
	}()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return r
}

// Messages returns the messages taken so far.
func (r *SMTPReceiver) Messages() []SMTPMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]SMTPMessage(nil), r.messages...)
}

// Arrived is signalled once per message taken.
func (r *SMTPReceiver) Arrived() <-chan struct{} { return r.arrived }

type smtpSession struct {
	r   *SMTPReceiver
	msg SMTPMessage
}

func (s *smtpSession) Reset()        { s.msg = SMTPMessage{} }
func (s *smtpSession) Logout() error { return nil }
func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	s.msg.From = from
	return nil
}
func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.msg.To = append(s.msg.To, to)
	return nil
}
func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.msg.Data = string(b)
	s.r.mu.Lock()
	s.r.messages = append(s.r.messages, s.msg)
	s.r.mu.Unlock()
	s.r.arrived <- struct{}{}
	return nil
}
