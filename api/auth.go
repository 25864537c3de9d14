package api

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/internal/redact"
	"github.com/cdcd-dev/cdcd/internal/store"
)

// ErrForbidden is returned for a request its caller may not make.
var ErrForbidden = errors.New("forbidden")

// requestInfo is what guard learns of a request, for the handler and the
// audit log.
type requestInfo struct {
	token  *store.Token
	target string
}

type infoKey struct{}

func info(r *http.Request) *requestInfo {
	i, _ := r.Context().Value(infoKey{}).(*requestInfo)
	return i
}

// setTarget names the object a request acts on, for the audit log.
func setTarget(r *http.Request, target string) {
	if i := info(r); i != nil {
		i.target = target
	}
}

// tokenOf returns the token a request was made with (none in open mode).
func tokenOf(r *http.Request) (store.Token, bool) {
	if i := info(r); i != nil && i.token != nil {
		return *i.token, true
	}
	return store.Token{}, false
}

// guard wraps a route's handler with, in order: cross-origin protection of
// state-changing requests, authentication and the route's role, the accepted
// body types, and the audit record of every request that is not a read.
func (s *Server) guard(rt route) http.Handler {
	h := rt.h
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rt.role == public {
			h(w, r)
			return
		}
		if err := s.csrf.Check(r); err != nil {
			writeError(w, http.StatusForbidden, "cross-origin request refused: state-changing requests must come from the server's own origin (or one given with --trusted-origins)", nil)
			return
		}
		ri := &requestInfo{target: targetOf(r)}
		r = r.WithContext(context.WithValue(r.Context(), infoKey{}, ri))
		tok, status, msg := s.authenticate(r)
		if status != 0 {
			s.authFailures.Inc()
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="cdcd"`)
			}
			writeError(w, status, msg, nil)
			return
		}
		ri.token = tok
		audited := r.Method != http.MethodGet && r.Method != http.MethodHead
		if audited {
			sw, _ := w.(*statusWriter)
			defer s.audit(r, rt, ri, sw)
		}
		if tok != nil && !tok.Role.Allows(rt.role) {
			s.authFailures.Inc()
			writeError(w, http.StatusForbidden, fmt.Sprintf("token %s (%s) has role %s; %s %s needs %s", tok.ID, tok.Name, tok.Role, rt.method, rt.path, rt.role), nil)
			return
		}
		if hasBody(r) {
			if msg := checkContentType(r.Header.Get("Content-Type")); msg != "" {
				w.Header().Set("Accept-Post", "application/json, application/yaml")
				writeError(w, http.StatusUnsupportedMediaType, msg, nil)
				return
			}
		}
		h(w, r)
	})
}

// targetOf names what a request's path points at.
func targetOf(r *http.Request) string {
	var parts []string
	for _, k := range []struct{ value, noun string }{{"name", ""}, {"table", "table"}, {"id", "token"}} {
		v := r.PathValue(k.value)
		if v == "" {
			continue
		}
		noun := k.noun
		if noun == "" {
			noun = "pipeline"
			if strings.HasPrefix(r.URL.Path, "/api/v1/connections/") {
				noun = "connection"
			}
		}
		parts = append(parts, noun+" "+v)
	}
	return strings.Join(parts, " ")
}

// authenticate returns the request's token, or, with no token at all, nil
// when the request is local (open mode); else a status and message to refuse
// it with.
func (s *Server) authenticate(r *http.Request) (*store.Token, int, string) {
	header := r.Header.Get("Authorization")
	if header == "" {
		has, err := s.cfg.Tokens.HasTokens(r.Context())
		if err != nil {
			s.log.Error("check tokens", "error", err)
			return nil, http.StatusServiceUnavailable, "cannot check credentials: metadata store unavailable"
		}
		if has {
			return nil, http.StatusUnauthorized, "missing bearer token (Authorization: Bearer <token>; an admin creates one with `cdcd tokens create NAME --role ROLE`)"
		}
		if why := notLocal(r); why != "" {
			return nil, http.StatusUnauthorized, "no API token exists yet, so this server answers only requests from this machine (" + why +
				"): create an admin token on the server with `cdcd tokens create admin --role admin` and send it as Authorization: Bearer <token>"
		}
		return nil, 0, "" // open mode
	}
	scheme, plain, ok := strings.Cut(strings.TrimSpace(header), " ")
	plain = strings.TrimSpace(plain)
	if !ok || !strings.EqualFold(scheme, "Bearer") || plain == "" {
		return nil, http.StatusUnauthorized, "the Authorization header must be Bearer <token>"
	}
	tok, err := s.cfg.Tokens.VerifyToken(r.Context(), plain)
	switch {
	case errors.Is(err, store.ErrTokenExpired):
		return nil, http.StatusUnauthorized, "token expired: an admin makes a new one with `cdcd tokens create`"
	case errors.Is(err, store.ErrNotFound):
		return nil, http.StatusUnauthorized, "invalid bearer token"
	case err != nil:
		s.log.Error("verify token", "error", err)
		return nil, http.StatusServiceUnavailable, "cannot check credentials: metadata store unavailable"
	}
	return &tok, 0, ""
}

// notLocal says why a request is not from this machine to this machine's
// loopback name ("" when it is): its peer address, Host and Origin (when
// present) must all be loopback, and no proxy header may say it was relayed,
// so that neither another host (through a proxy on this machine too) nor a
// web page (cross-site, or a DNS name rebound to 127.0.0.1) reaches an open
// server.
func notLocal(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return "the request comes from " + host
	}
	for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Real-Ip"} {
		if r.Header.Get(h) != "" {
			// a proxy on this machine relays it: the client may be anywhere
			return "it came through a proxy (" + h + ")"
		}
	}
	if !loopbackName(hostOnly(r.Host)) {
		return fmt.Sprintf("Host %q is not a loopback name", hostOnly(r.Host))
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := parseOrigin(o)
		if err != nil || !loopbackName(u) {
			return fmt.Sprintf("Origin %q is not a loopback origin", o)
		}
	}
	return ""
}

// parseOrigin returns the host name of an Origin header.
func parseOrigin(o string) (string, error) {
	_, rest, ok := strings.Cut(o, "://")
	if !ok {
		return "", errors.New("not an origin")
	}
	return hostOnly(rest), nil
}

// hostOnly returns a Host header's host name, lower case, without port or
// IPv6 brackets.
func hostOnly(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	return strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"))
}

func loopbackName(h string) bool {
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// hostAllowed reports whether a request's Host names this server: a loopback
// name, an IP literal (no DNS name can be rebound to it), or an allowed host.
func (s *Server) hostAllowed(hostport string) bool {
	h := hostOnly(hostport)
	return loopbackName(h) || net.ParseIP(h) != nil || s.hosts[h] || s.hosts["*"]
}

// hasBody reports whether a request carries a body.
func hasBody(r *http.Request) bool {
	return r.ContentLength > 0 || (r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody)
}

// checkContentType returns why a body of this type is refused, or "". Only
// JSON and YAML are read: no type a web page may send without a preflight
// (text/plain, form encodings) is accepted.
func checkContentType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	switch {
	case ct == "":
		return "a request body needs Content-Type: application/json (or application/yaml)"
	case err != nil:
		return fmt.Sprintf("unreadable Content-Type %q", ct)
	}
	switch mt {
	case "application/json", "application/yaml", "application/x-yaml", "text/yaml":
		return ""
	}
	return fmt.Sprintf("Content-Type %s is not accepted: send application/json or application/yaml", mt)
}

// audit records a request that is not a read: who, what, on what, from
// where, and how it ended. No value sent is recorded.
func (s *Server) audit(r *http.Request, rt route, ri *requestInfo, sw *statusWriter) {
	if s.cfg.Audit == nil {
		return
	}
	e := store.AuditEntry{At: time.Now(), Action: rt.method + " " + rt.path, Target: ri.target, Remote: r.RemoteAddr, Status: http.StatusOK}
	if ri.token != nil {
		e.TokenID, e.TokenName = ri.token.ID, ri.token.Name
	}
	if sw != nil {
		e.Status = sw.status
		if sw.status >= 400 {
			e.Error = redact.Text(sw.errMsg)
		}
	}
	// the request's context may be done; the record must still be made
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	if err := s.cfg.Audit.RecordAudit(ctx, e); err != nil {
		s.log.Error("record audit entry", "action", e.Action, "target", e.Target, "error", err)
	}
}
