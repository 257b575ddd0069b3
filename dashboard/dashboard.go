package dashboard

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"sluice/metrics"
	"sluice/protocol"
	"sluice/store"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Sources are what the dashboard reads and acts on.
type Sources struct {
	Store   *store.Store
	Server  *protocol.Server // runs the actions; its users sign in
	Metrics *metrics.Metrics // event totals and duration histograms
	// Now is the node's clock in Unix ms (a group's log time); nil: the
	// wall clock.
	Now func() int64
	// PromHandler, when set, is served at /metrics behind the same
	// sign-in.
	PromHandler http.Handler
	Log         zerolog.Logger
}

// Dashboard serves the pages. Start samples the event rates; Close stops
// the sampler.
type Dashboard struct {
	src    Sources
	secret []byte // signs sessions and CSRF tokens; new at each start, so a restart signs everyone out
	ring   *ring
	pages  map[string]*template.Template
	mux    http.Handler

	startOnce sync.Once
	stopOnce  sync.Once
	stop      chan struct{} // closed by Close
	done      chan struct{} // closed when the sampler has returned
}

// New builds a dashboard over src.
func New(src Sources) (*Dashboard, error) {
	if src.Store == nil || src.Server == nil || src.Metrics == nil {
		return nil, errors.New("dashboard: Store, Server and Metrics are required")
	}
	if src.Now == nil {
		src.Now = func() int64 { return time.Now().UnixMilli() }
	}
	d := &Dashboard{src: src, secret: make([]byte, 32), ring: newRing(ringSeconds),
		stop: make(chan struct{}), done: make(chan struct{})}
	if _, err := rand.Read(d.secret); err != nil {
		return nil, err
	}
	var err error
	if d.pages, err = parsePages(); err != nil {
		return nil, err
	}
	d.mux = http.NewCrossOriginProtection().Handler(d.routes())
	return d, nil
}

// Start begins sampling the event totals once a second, in a goroutine
// that Close ends.
func (d *Dashboard) Start() {
	d.startOnce.Do(func() {
		d.ring.add(d.sample())
		go d.sampleLoop()
	})
}

// Close stops the sampler and waits for it. Safe to call more than once,
// and without Start.
func (d *Dashboard) Close() {
	d.stopOnce.Do(func() { close(d.stop) })
	d.startOnce.Do(func() { close(d.done) }) // never started: nothing to wait for
	<-d.done
}

func (d *Dashboard) sampleLoop() {
	defer close(d.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			d.ring.add(d.sample())
		}
	}
}

// sample reads the event totals the charts are drawn from.
func (d *Dashboard) sample() sample {
	t := d.src.Metrics.Totals()
	return sample{at: time.Now().Unix(), ev: [numSeries]uint64{
		t[metrics.Pushed], t[metrics.Reserved], t[metrics.Acked], t[metrics.Failed]}}
}

// ServeHTTP serves the dashboard.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Scripts and styles come from the dashboard's own files only: a
	// name or payload that escaped its escaping still could not run.
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	d.mux.ServeHTTP(w, r)
}

func (d *Dashboard) routes() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /login", d.loginPage)
	mux.HandleFunc("POST /login", d.login)
	mux.HandleFunc("POST /logout", d.logout)
	mux.HandleFunc("GET /{$}", d.authed(d.overview))
	mux.HandleFunc("GET /queue", d.authed(d.queuePage))
	mux.HandleFunc("GET /job", d.authed(d.jobPage))
	mux.HandleFunc("GET /policies", d.authed(d.policiesPage))
	mux.HandleFunc("GET /server", d.authed(d.serverPage))
	mux.HandleFunc("POST /action", d.authed(d.action))
	if d.src.PromHandler != nil {
		prom := d.src.PromHandler
		mux.HandleFunc("GET /metrics", d.authed(func(w http.ResponseWriter, r *http.Request, _ *protocol.User) {
			prom.ServeHTTP(w, r)
		}))
	}
	return mux
}

// ---- signing in ------------------------------------------------------------

const (
	sessionCookie = "sluice_session"
	csrfCookie    = "sluice_csrf"
	sessionTTL    = 12 * time.Hour
)

// open reports whether the dashboard needs no sign-in: the default user
// is on and has no password, as a RESP client would need no AUTH.
func (d *Dashboard) open() (*protocol.User, bool) {
	def := d.src.Server.ACL().User("default")
	if def != nil && def.NoPass() {
		return def, true
	}
	return nil, false
}

// user is who r is signed in as, or nil.
func (d *Dashboard) user(r *http.Request) *protocol.User {
	if u, ok := d.open(); ok {
		return u
	}
	acl := d.src.Server.ACL()
	if name, pass, ok := r.BasicAuth(); ok {
		if name == "" {
			name = "default"
		}
		if u := acl.User(name); u != nil && u.CheckPassword(pass) { // constant time
			return u
		}
		return nil
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	name, ok := d.checkSession(c.Value, time.Now())
	if !ok {
		return nil
	}
	if u := acl.User(name); u != nil && u.Enabled() {
		return u
	}
	return nil // deleted or switched off since
}

// session is a signed "user.expiry.mac" cookie value.
func (d *Dashboard) session(user string, now time.Time) string {
	body := base64.RawURLEncoding.EncodeToString([]byte(user)) + "." + strconv.FormatInt(now.Add(sessionTTL).Unix(), 10)
	return body + "." + d.mac("session", body)
}

func (d *Dashboard) checkSession(v string, now time.Time) (string, bool) {
	i := strings.LastIndexByte(v, '.')
	if i < 0 {
		return "", false
	}
	body, sig := v[:i], v[i+1:]
	if !hmac.Equal([]byte(sig), []byte(d.mac("session", body))) {
		return "", false
	}
	u, exp, ok := strings.Cut(body, ".")
	if !ok {
		return "", false
	}
	e, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || now.Unix() >= e {
		return "", false
	}
	name, err := base64.RawURLEncoding.DecodeString(u)
	if err != nil {
		return "", false
	}
	return string(name), true
}

func (d *Dashboard) mac(purpose, v string) string {
	m := hmac.New(sha256.New, d.secret)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(v))
	return hex.EncodeToString(m.Sum(nil))
}

type authedHandler func(w http.ResponseWriter, r *http.Request, u *protocol.User)

// authed lets signed-in requests through; a page asked for by a browser
// goes to the login form, anything else gets 401.
func (d *Dashboard) authed(h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u := d.user(r)
		if u == nil {
			if r.Method == http.MethodGet && r.URL.Path != "/metrics" && r.Header.Get("X-Partial") == "" {
				http.Redirect(w, r, "/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="sluice", charset="UTF-8"`)
			http.Error(w, "sign-in required", http.StatusUnauthorized)
			return
		}
		h(w, r, u)
	}
}

func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	d.render(w, r, "login", page{Title: "Sign in", Data: loginData{Next: safeNext(r.URL.Query().Get("next"))}})
}

type loginData struct {
	Next, Error, User string
}

func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	name, pass, next := r.PostForm.Get("user"), r.PostForm.Get("password"), safeNext(r.PostForm.Get("next"))
	if name == "" {
		name = "default"
	}
	u := d.src.Server.ACL().User(name)
	if u == nil || !u.CheckPassword(pass) {
		d.src.Log.Warn().Str("user", name).Str("addr", r.RemoteAddr).Msg("dashboard sign-in failed")
		w.WriteHeader(http.StatusUnauthorized)
		d.render(w, r, "login", page{Title: "Sign in", Data: loginData{Next: next, User: name, Error: "wrong user name or password"}})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: d.session(name, time.Now()), Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int(sessionTTL / time.Second)})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	if !d.csrfOK(r) {
		http.Error(w, "bad or missing CSRF token: reload the page and try again", http.StatusForbidden)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// safeNext keeps a post-login destination on this site: a path, never a
// scheme-relative or absolute URL.
func safeNext(n string) string {
	if !strings.HasPrefix(n, "/") || strings.HasPrefix(n, "//") || strings.HasPrefix(n, "/\\") || strings.ContainsAny(n, "\r\n") {
		return "/"
	}
	return n
}

// ---- CSRF --------------------------------------------------------------------

// csrfToken is the token r's forms carry: a MAC of the browser's CSRF
// cookie, which it sets on w when r has none. A form posted from another
// site has neither (and the cross-origin check refuses it first).
func (d *Dashboard) csrfToken(w http.ResponseWriter, r *http.Request) string {
	v := ""
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == 32 {
		v = c.Value
	} else {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		v = hex.EncodeToString(b)
		http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: v, Path: "/", HttpOnly: true,
			SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	}
	return d.mac("csrf", v)
}

// csrfOK checks a POST's token against its cookie. The form must be
// parsed.
func (d *Dashboard) csrfOK(r *http.Request) bool {
	c, err := r.Cookie(csrfCookie)
	if err != nil || c.Value == "" {
		return false
	}
	_ = r.ParseForm()
	got := r.PostForm.Get("csrf")
	return got != "" && hmac.Equal([]byte(got), []byte(d.mac("csrf", c.Value)))
}
