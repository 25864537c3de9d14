package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"strconv"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"go.yaml.in/yaml/v3"
)

// EmailConfig configures delivery by email over SMTP.
type EmailConfig struct {
	Host     string   `yaml:"host" json:"host"`
	Port     int      `yaml:"port" json:"port"` // default 587 (465 with tls: tls)
	Username string   `yaml:"username" json:"username"`
	Password string   `yaml:"password" json:"password"`
	From     string   `yaml:"from" json:"from"`
	To       []string `yaml:"to" json:"to"`
	// TLS is starttls (the default: the server must offer it), tls (implicit
	// TLS, usually port 465) or none (plain text: only for a relay on this
	// machine or a trusted network).
	TLS string `yaml:"tls" json:"tls"`
}

// EmailFactory builds email notifiers.
func EmailFactory() Factory {
	return Factory{
		Spec: func() any { return EmailConfig{Port: 587, TLS: "starttls"} },
		New: func(raw *yaml.Node, _ Deps) (Notifier, error) {
			c := EmailConfig{TLS: "starttls"}
			if err := component.Decode(raw, &c); err != nil {
				return nil, err
			}
			if c.Port == 0 {
				c.Port = map[string]int{"tls": 465}[c.TLS]
				if c.Port == 0 {
					c.Port = 587
				}
			}
			var errs []error
			bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
			if c.Host == "" {
				bad("host: required")
			}
			if c.Port < 1 || c.Port > 65535 {
				bad("port: must be from 1 to 65535")
			}
			if _, err := mail.ParseAddress(c.From); err != nil {
				bad("from: not an address: %v", err)
			}
			if len(c.To) == 0 {
				bad("to: at least one address")
			}
			for i, a := range c.To {
				if _, err := mail.ParseAddress(a); err != nil {
					bad("to[%d]: not an address: %v", i, err)
				}
			}
			if c.TLS != "starttls" && c.TLS != "tls" && c.TLS != "none" {
				bad("tls: must be starttls, tls or none")
			}
			if c.TLS == "none" && c.Password != "" {
				bad("password: not sent over a plain connection (tls: none); use starttls or tls")
			}
			if err := errors.Join(errs...); err != nil {
				return nil, err
			}
			return &email{cfg: c}, nil
		},
	}
}

type email struct {
	cfg EmailConfig
}

// headerSafe drops what would end a header line.
var headerSafe = strings.NewReplacer("\r", " ", "\n", " ")

func (e *email) message(n Notification) []byte {
	from, _ := mail.ParseAddress(e.cfg.From)
	to := make([]string, len(e.cfg.To))
	for i, a := range e.cfg.To {
		p, _ := mail.ParseAddress(a)
		to[i] = p.String()
	}
	var id [12]byte
	rand.Read(id[:])
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\n", from.String())
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(to, ", "))
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", headerSafe.Replace("cdcd "+n.Title())))
	fmt.Fprintf(&b, "Date: %s\r\n", time.Now().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s.%s@cdcd>\r\n", hex.EncodeToString(id[:]), headerSafe.Replace(strings.ReplaceAll(n.ID, " ", "_")))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	w := quotedprintable.NewWriter(&b)
	w.Write([]byte(strings.ReplaceAll(n.Text(), "\n", "\r\n")))
	w.Close()
	return b.Bytes()
}

func (e *email) Notify(ctx context.Context, n Notification) error {
	c := e.cfg
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	addr := net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	tlsConf := &tls.Config{ServerName: c.Host, MinVersion: tls.VersionTLS12}
	if c.TLS == "tls" {
		conn = tls.Client(conn, tlsConf)
	}
	cl, err := smtp.NewClient(conn, c.Host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("smtp %s: %w", addr, err)
	}
	defer cl.Close()
	if err := cl.Hello("cdcd"); err != nil {
		return fmt.Errorf("smtp %s: %w", addr, err)
	}
	if c.TLS == "starttls" {
		if ok, _ := cl.Extension("STARTTLS"); !ok {
			return component.Permanent(fmt.Errorf("smtp %s does not offer STARTTLS (tls: starttls): use tls: tls for implicit TLS", addr))
		}
		if err := cl.StartTLS(tlsConf); err != nil {
			return fmt.Errorf("smtp %s: STARTTLS: %w", addr, err)
		}
	}
	if c.Username != "" {
		if err := cl.Auth(smtp.PlainAuth("", c.Username, c.Password, c.Host)); err != nil {
			return component.Permanent(fmt.Errorf("smtp %s: authentication: %w", addr, err))
		}
	}
	from, _ := mail.ParseAddress(c.From)
	if err := cl.Mail(from.Address); err != nil {
		return fmt.Errorf("smtp %s: MAIL FROM: %w", addr, err)
	}
	for _, a := range c.To {
		p, _ := mail.ParseAddress(a)
		if err := cl.Rcpt(p.Address); err != nil {
			return fmt.Errorf("smtp %s: RCPT TO %s: %w", addr, p.Address, err)
		}
	}
	w, err := cl.Data()
	if err != nil {
		return fmt.Errorf("smtp %s: DATA: %w", addr, err)
	}
	if _, err := w.Write(e.message(n)); err != nil {
		return fmt.Errorf("smtp %s: %w", addr, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp %s: the message was refused: %w", addr, err)
	}
	return cl.Quit()
}
