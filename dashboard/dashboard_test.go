package dashboard_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"sluice/config"
)

// A GET never changes anything: the action URL answers GET with 405 and
// the queue stays as it was.
func TestGetChangesNothing(t *testing.T) {
	n := startNode(t, nil)
	n.do(t, "JOBPUSH", "emails", "send", "x")
	c := browser(t)
	for _, u := range []string{
		"/action?op=pause&queue=emails",
		"/action?op=purge&queue=emails&confirm=yes",
		"/queue?name=emails&op=pause",
	} {
		code, _ := get(t, c, n.base+u)
		if strings.HasPrefix(u, "/action") && code != http.StatusMethodNotAllowed {
			t.Errorf("GET %s: %d, want 405", u, code)
		}
	}
	st := n.stats(t, "emails")
	if st["paused"] != int64(0) && st["paused"] != false || st["queued"] != int64(1) {
		t.Fatalf("after GETs the queue is %v, want unpaused with its job", st)
	}
}

// A POST without the page's CSRF token, with another browser's token, or
// from another site is refused and changes nothing; the page's own form
// pauses the queue.
func TestCSRF(t *testing.T) {
	n := startNode(t, nil)
	n.do(t, "JOBPUSH", "emails", "send", "x")
	victim, attacker := browser(t), browser(t)
	token := csrf(t, victim, n.base+"/queue?name=emails")
	other := csrf(t, attacker, n.base+"/queue?name=emails")
	form := func(tok string) url.Values {
		return url.Values{"op": {"pause"}, "queue": {"emails"}, "csrf": {tok}}
	}
	for name, try := range map[string]func() int{
		"no token":                  func() int { c, _ := post(t, victim, n.base+"/action", form("")); return c },
		"a wrong token":             func() int { c, _ := post(t, victim, n.base+"/action", form(strings.Repeat("0", 64))); return c },
		"another browser's token":   func() int { c, _ := post(t, victim, n.base+"/action", form(other)); return c },
		"the token without cookies": func() int { c, _ := post(t, &http.Client{}, n.base+"/action", form(token)); return c },
		"a cross-site request": func() int {
			req, _ := http.NewRequest("POST", n.base+"/action", strings.NewReader(form(token).Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Sec-Fetch-Site", "cross-site")
			req.Header.Set("Origin", "http://evil.example")
			resp, err := victim.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		},
	} {
		if code := try(); code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, code)
		}
		if p := n.stats(t, "emails")["paused"]; p != int64(0) && p != false {
			t.Fatalf("%s paused the queue", name)
		}
	}
	code, body := post(t, victim, n.base+"/action", form(token))
	if code != http.StatusOK || !strings.Contains(body, "paused") {
		t.Fatalf("the page's own form: %d\n%s", code, body)
	}
	if p := n.stats(t, "emails")["paused"]; p != int64(1) && p != true {
		t.Fatalf("the page's own form did not pause the queue: %v", p)
	}
}

// With requirepass every page, the partial refresh and /metrics need the
// password: by basic auth or by the login form's session. The login
// form's wrong password is refused.
func TestAuthRequired(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.RequirePass = "s3cret" })
	c := browser(t)
	for _, u := range []string{"/", "/queue?name=q", "/job?id=x", "/policies", "/server"} {
		code, _ := get(t, c, n.base+u)
		if code != http.StatusSeeOther {
			t.Errorf("GET %s without a password: %d, want 303 to /login", u, code)
		}
	}
	for _, u := range []string{"/metrics"} {
		if code, _ := get(t, c, n.base+u); code != http.StatusUnauthorized {
			t.Errorf("GET %s without a password: %d, want 401", u, code)
		}
	}
	req, _ := http.NewRequest("GET", n.base+"/?partial=1", nil)
	req.Header.Set("X-Partial", "1")
	if resp, err := c.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("partial without a password: %v %v, want 401", resp, err)
	}
	if code, _ := post(t, c, n.base+"/action", url.Values{"op": {"pause"}, "queue": {"q"}}); code != http.StatusUnauthorized {
		t.Errorf("POST /action without a password: %d, want 401", code)
	}
	basic := func(user, pass string) int {
		req, _ := http.NewRequest("GET", n.base+"/server", nil)
		req.SetBasicAuth(user, pass)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := basic("default", "wrong"); code == http.StatusOK {
		t.Error("basic auth with a wrong password was let in")
	}
	if code := basic("default", "s3cret"); code != http.StatusOK {
		t.Errorf("basic auth with the password: %d, want 200", code)
	}
	if code, _ := post(t, c, n.base+"/login", url.Values{"user": {"default"}, "password": {"nope"}}); code != http.StatusUnauthorized {
		t.Errorf("login with a wrong password: %d, want 401", code)
	}
	if code, _ := get(t, c, n.base+"/"); code != http.StatusSeeOther {
		t.Errorf("after a failed login: %d, want 303", code)
	}
	if code, _ := post(t, c, n.base+"/login", url.Values{"password": {"s3cret"}, "next": {"//evil.example/"}}); code != http.StatusSeeOther {
		t.Fatalf("login: %d, want 303", code)
	}
	if code, body := get(t, c, n.base+"/"); code != http.StatusOK || !strings.Contains(body, "Sign out") {
		t.Fatalf("after login: %d\n%s", code, body)
	}
	if code, _ := get(t, c, n.base+"/metrics"); code != http.StatusOK {
		t.Errorf("/metrics after login: %d", code)
	}
}

// Names, payloads and errors are escaped on every page they show on.
func TestEscaping(t *testing.T) {
	n := startNode(t, nil)
	id := n.do(t, "JOBPUSH", xssQueue, "h", xssPayload).(string)
	fid := n.failedJob(t, xssQueue, xssPayload)
	c := browser(t)
	q := url.QueryEscape(xssQueue)
	for _, u := range []string{"/", "/?partial=1", "/queue?name=" + q, "/queue?state=failed&name=" + q,
		"/job?id=" + id, "/job?id=" + fid, "/job?id=" + url.QueryEscape(xssPayload), "/server"} {
		code, body := get(t, c, n.base+u)
		if code != http.StatusOK && code != http.StatusNotFound {
			t.Errorf("GET %s: %d", u, code)
		}
		for _, raw := range []string{"<img src=x", "<script>alert"} {
			if strings.Contains(body, raw) {
				t.Errorf("GET %s: the page holds %q unescaped", u, raw)
			}
		}
	}
	_, body := get(t, c, n.base+"/job?id="+id)
	if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("the job page does not show the payload as text:\n%s", body)
	}
	_, body = get(t, c, n.base+"/")
	if !strings.Contains(body, "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;") {
		t.Errorf("the overview does not show the queue's name as text:\n%s", body)
	}
}

// Reading needs no script: the numbers are in the HTML the server sends.
func TestPagesRenderOnTheServer(t *testing.T) {
	n := startNode(t, nil)
	for i := 0; i < 3; i++ {
		n.do(t, "JOBPUSH", "emails", "send", `{"to":"a@example.com","n":[1,2]}`)
	}
	n.do(t, "POLICYSET", "CONCURRENCY", "smtp", 1)
	n.do(t, "JOBPUSH", "emails", "send", "x", "CONCURRENCY", "smtp")
	blocked := n.do(t, "JOBPUSH", "emails", "send", "\x00\x01binary", "CONCURRENCY", "smtp").(string)
	n.do(t, "JOBRESERVE", "w", 60000, "QUEUES", "emails") // the first, in order: no key
	r := n.do(t, "JOBRESERVE", "w", 60000, "COUNT", 10, "QUEUES", "emails").([]any)
	_ = r
	c := browser(t)
	_, body := get(t, c, n.base+"/")
	for _, want := range []string{`data-figure="queues">1<`, `<polyline class="series series-pushed" points="`, `href="/queue?name=emails"`} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	_, body = get(t, c, n.base+"/job?id="+blocked)
	for _, want := range []string{"<li>concurrency key smtp is at 1/1</li>", "bytes, shown as hex", "00 01 62 69"} {
		if !strings.Contains(body, want) {
			t.Errorf("job page lacks %q:\n%s", want, body)
		}
	}
	_, body = get(t, c, n.base+"/policies")
	if !strings.Contains(body, `data-col="usage">1 / 1<`) {
		t.Errorf("policies page lacks smtp's 1 / 1:\n%s", body)
	}
	_, body = get(t, c, n.base+"/server")
	for _, want := range []string{`data-section="Server"`, `data-section="Commandstats"`, "Slow log"} {
		if !strings.Contains(body, want) {
			t.Errorf("server page lacks %q", want)
		}
	}
}

// An action runs the command a client would: it counts in the command's
// statistics and is in the log, so a restart keeps it.
func TestActionsAreCommands(t *testing.T) {
	n := startNode(t, nil)
	n.do(t, "JOBPUSH", "emails", "send", "x")
	c := browser(t)
	tok := csrf(t, c, n.base+"/queue?name=emails")
	if code, body := post(t, c, n.base+"/action", url.Values{"op": {"pause"}, "queue": {"emails"}, "csrf": {tok}}); code != http.StatusOK {
		t.Fatalf("pause: %d\n%s", code, body)
	}
	info := n.do(t, "INFO", "commandstats").(string)
	if !strings.Contains(info, "cmdstat_queuepause:calls=1") {
		t.Errorf("QUEUEPAUSE is not counted in commandstats:\n%s", info)
	}
	cfg := n.srv.Config()
	ctx, cancel := contextTimeout()
	defer cancel()
	if err := n.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	again := startWith(t, cfg)
	if p := again.stats(t, "emails")["paused"]; p != int64(1) && p != true {
		t.Fatalf("after a restart the queue is not paused (%v): the action was not logged", p)
	}
}

// A purge asks first; the answer does it. Retry-all over a filter retries
// the failed jobs that match, and only those.
func TestConfirmAndBulk(t *testing.T) {
	n := startNode(t, nil)
	for i := 0; i < 3; i++ {
		n.failedJob(t, "emails", "smtp timeout")
	}
	other := n.failedJob(t, "emails", "bad address")
	c := browser(t)
	tok := csrf(t, c, n.base+"/queue?name=emails&state=failed")
	code, body := post(t, c, n.base+"/action", url.Values{"op": {"retry-all"}, "queue": {"emails"}, "state": {"failed"},
		"error": {"TIMEOUT"}, "csrf": {tok}})
	if code != http.StatusOK || !strings.Contains(body, `id="confirm"`) {
		t.Fatalf("retry-all without confirm: %d, want a question\n%s", code, body)
	}
	if st := n.stats(t, "emails"); st["failed"] != int64(4) {
		t.Fatalf("asking changed the queue: %v", st)
	}
	code, body = post(t, c, n.base+"/action", url.Values{"op": {"retry-all"}, "queue": {"emails"}, "state": {"failed"},
		"error": {"TIMEOUT"}, "csrf": {tok}, "confirm": {"yes"}})
	if code != http.StatusOK || !strings.Contains(body, "3 jobs queued again; skipped: 0 no longer in a state the action applies to, 0 gone meanwhile.") {
		t.Fatalf("retry-all: %d\n%s", code, body)
	}
	st := n.stats(t, "emails")
	if st["failed"] != int64(1) || st["queued"] != int64(3) {
		t.Fatalf("after retry-all: %v, want 1 failed (%s) and 3 queued", st, other)
	}
}

// A user signs in with its own password and acts with its own rights: a
// user that may only read is refused a pause (NOPERM), which changes
// nothing, and ACL LOG names the dashboard.
func TestActionsRunWithTheUsersRights(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.RequirePass = "s3cret" })
	n.do(t, "ACL", "SETUSER", "viewer", "on", ">view", "+@read", "~*")
	n.do(t, "JOBPUSH", "emails", "send", "x")
	c := browser(t)
	if code, _ := post(t, c, n.base+"/login", url.Values{"user": {"viewer"}, "password": {"view"}}); code != http.StatusSeeOther {
		t.Fatalf("viewer's login: %d", code)
	}
	tok := csrf(t, c, n.base+"/queue?name=emails")
	code, body := post(t, c, n.base+"/action", url.Values{"op": {"pause"}, "queue": {"emails"}, "csrf": {tok}})
	if code != http.StatusConflict || !strings.Contains(body, "NOPERM") {
		t.Fatalf("viewer's pause: %d, want 409 NOPERM\n%s", code, body)
	}
	if p := n.stats(t, "emails")["paused"]; p != int64(0) && p != false {
		t.Fatal("a refused pause paused the queue")
	}
	if log := strings.Join(flatten(n.do(t, "ACL", "LOG")), " "); !strings.Contains(log, "dashboard:") {
		t.Errorf("ACL LOG does not name the dashboard: %s", log)
	}
}

// A session ends when its user is switched off.
func TestSessionEndsWithItsUser(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.RequirePass = "s3cret" })
	n.do(t, "ACL", "SETUSER", "ops", "on", ">pw", "+@all", "~*")
	c := browser(t)
	if code, _ := post(t, c, n.base+"/login", url.Values{"user": {"ops"}, "password": {"pw"}}); code != http.StatusSeeOther {
		t.Fatalf("login: %d", code)
	}
	if code, _ := get(t, c, n.base+"/"); code != http.StatusOK {
		t.Fatalf("signed in: %d", code)
	}
	n.do(t, "ACL", "SETUSER", "ops", "off")
	if code, _ := get(t, c, n.base+"/"); code != http.StatusSeeOther {
		t.Fatalf("after the user was switched off: %d, want 303 to /login", code)
	}
}
