package dashboard_test

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// The browser tests drive Debian's chromium, headless, against a node on
// 127.0.0.1. Without chromium they are skipped, except in CI (CI set),
// where it is a failure: test.sh installs it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "chromium"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not installed (apt-get install chromium)")
	}
	t.Skip("chromium not installed (apt-get install chromium)")
	return ""
}

// tab is a browser tab that records what would make a page fail: console
// errors, uncaught exceptions, and any dialog (an alert is a script that
// ran from a name or a payload). It keeps a 1280×800 screenshot of every
// page it visits; they are written out when the test fails, or to dir
// when it is set (the docs' screenshots).
type tab struct {
	t   *testing.T
	ctx context.Context
	dir string

	mu      sync.Mutex // protects errors, dialogs, shots
	errors  []string
	dialogs []string
	shots   map[string][]byte
}

func newTab(t *testing.T, scripts bool) *tab {
	t.Helper()
	path := chromiumPath(t)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-default-browser-check", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 800))
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 2*time.Minute)
	tb := &tab{t: t, ctx: ctx, shots: map[string][]byte{}}
	t.Cleanup(func() {
		tb.saveShots()
		cancelT()
		cancelC()
		cancelA()
	})
	// Start the browser, then listen before any page loads.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	if !scripts {
		if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
			t.Fatal(err)
		}
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				tb.mu.Lock()
				tb.errors = append(tb.errors, m.String()+" ("+m.URL+")")
				tb.mu.Unlock()
			}
		}
	}()
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.dialogs = append(tb.dialogs, string(ev.Type)+": "+ev.Message)
			tb.mu.Unlock()
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	return tb
}

// visit loads u, waits for it, keeps a screenshot named name and checks
// that nothing went wrong on the way.
func (tb *tab) visit(name, u string) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, chromedp.Navigate(u), chromedp.WaitReady("main")); err != nil {
		tb.t.Fatalf("%s (%s): %v", name, u, err)
	}
	tb.shot(name)
	tb.clean(name)
}

func (tb *tab) shot(name string) {
	tb.t.Helper()
	b, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.t.Errorf("screenshot of %s: %v", name, err)
		return
	}
	tb.mu.Lock()
	tb.shots[name] = b
	tb.mu.Unlock()
}

// clean fails the test on console errors or dialogs seen so far.
func (tb *tab) clean(where string) {
	tb.t.Helper()
	time.Sleep(100 * time.Millisecond) // let the page's own events arrive
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, e := range tb.errors {
		tb.t.Errorf("%s: console: %s", where, e)
	}
	for _, d := range tb.dialogs {
		tb.t.Errorf("%s: a dialog opened (a script ran): %s", where, d)
	}
	tb.errors, tb.dialogs = nil, nil
}

func (tb *tab) saveShots() {
	dir := tb.dir
	if dir == "" && !tb.t.Failed() {
		return
	}
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "sluice-dashboard-shots-"); err != nil {
			tb.t.Log(err)
			return
		}
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for name, b := range tb.shots {
		if err := os.WriteFile(filepath.Join(dir, name+".png"), b, 0o644); err != nil {
			tb.t.Log(err)
		}
	}
	tb.t.Logf("screenshots of every page visited: %s", dir)
}

func (tb *tab) text(sel string) string {
	tb.t.Helper()
	s, err := chromedp.Run(tb.ctx, chromedp.TextContent(sel))
	if err != nil {
		tb.t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

func (tb *tab) eval(js string) any {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[any](js))
	if err != nil {
		tb.t.Fatalf("%s: %v", js, err)
	}
	return v
}

// wait polls a JavaScript predicate until it holds (10 s at most).
func (tb *tab) wait(what, js string) {
	tb.t.Helper()
	if _, err := chromedp.Run(tb.ctx, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingTimeout(10*time.Second), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		tb.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
		tb.t.Fatalf("waiting for %s (%s): %v", what, js, err)
	}
}

// click presses a button that submits a form, and waits for the page
// that answers.
func (tb *tab) click(sel string) {
	tb.t.Helper()
	if _, err := chromedp.RunResponse(tb.ctx, chromedp.Click(sel)); err != nil {
		tb.t.Fatalf("click %s: %v", sel, err)
	}
	if err := chromedp.Do(tb.ctx, chromedp.WaitReady("main")); err != nil {
		tb.t.Fatalf("after clicking %s: %v", sel, err)
	}
}

// queuedTotal is what the overview's total of queued jobs must show.
func (n *node) queuedTotal(t *testing.T) int64 {
	var sum int64
	for _, q := range n.do(t, "QUEUES").([]any) {
		sum += n.stats(t, q.(string))["queued"].(int64)
	}
	return sum
}

// Every page loads in a real browser with no console error; the overview's
// figures are the server's and follow it live; a chart is drawn; pause and
// retry pressed in the page change the server's state; the hostile queue
// name and payload show as text and never run.
func TestBrowser(t *testing.T) {
	n := startNode(t, nil)
	for i := 0; i < 5; i++ {
		n.do(t, "JOBPUSH", "emails", "send", `{"to":"user`+strconv.Itoa(i)+`@example.com","template":"welcome"}`)
	}
	n.do(t, "POLICYSET", "CONCURRENCY", "smtp", 2)
	n.do(t, "POLICYSET", "RATELIMIT", "api", 10, 60000)
	for i := 0; i < 3; i++ {
		n.do(t, "JOBPUSH", "emails", "send", "x", "CONCURRENCY", "smtp")
	}
	n.do(t, "JOBRESERVE", "w", 60000, "COUNT", 10, "QUEUES", "emails")
	xss := n.do(t, "JOBPUSH", xssQueue, "h", xssPayload).(string)
	failed := n.failedJob(t, "reports", "render failed: <b>template</b> missing")
	n.do(t, "JOBPUSH", "reports", "render", "\x00\x01\x02 not text", "CONCURRENCY", "smtp")

	tb := newTab(t, true)
	base := n.base

	// Overview: the figures are the server's, and follow it.
	tb.visit("overview", base+"/")
	tb.wait("the live refresh", `document.getElementById("live-status").dataset.state === "live"`)
	if got, want := tb.text(`[data-figure="queued"]`), strconv.FormatInt(n.queuedTotal(t), 10); got != want {
		t.Errorf("overview shows %s queued, the server has %s", got, want)
	}
	if got, want := tb.text(`[data-figure="queues"]`), strconv.Itoa(len(n.do(t, "QUEUES").([]any))); got != want {
		t.Errorf("overview shows %s queues, the server has %s", got, want)
	}
	for i := 0; i < 7; i++ {
		n.do(t, "JOBPUSH", "emails", "send", "more")
	}
	want := strconv.FormatInt(n.queuedTotal(t), 10)
	tb.wait("the new total without a reload", `document.querySelector('[data-figure="queued"]').textContent.trim() === "`+want+`"`)
	// A chart: a drawn line with a size on the page.
	tb.wait("a chart with a line", `(() => { const p = document.querySelector("polyline.series-pushed");
		if (!p) return false; const b = p.getBBox(); return p.points.numberOfItems >= 2 && b.width > 100; })()`)
	tb.shot("overview")
	tb.clean("overview, live")

	// The hostile queue: its name is text, nothing of it became markup.
	tb.visit("queue-xss", base+"/queue?name="+url.QueryEscape(xssQueue))
	if got := tb.text("h1 .name"); got != xssQueue {
		t.Errorf("queue page title shows %q, want the name as text %q", got, xssQueue)
	}
	if v := tb.eval(`document.querySelectorAll("img").length`); v != float64(0) {
		t.Errorf("the queue page has %v img elements: the name became markup", v)
	}
	tb.visit("job-xss", base+"/job?id="+url.QueryEscape(xss))
	if got := tb.text("#payload"); got != xssPayload {
		t.Errorf("job page payload shows %q, want %q as text", got, xssPayload)
	}
	if v := tb.eval(`document.scripts.length`); v != float64(1) {
		t.Errorf("the job page has %v scripts, want only the dashboard's own", v)
	}
	tb.visit("overview-xss", base+"/") // the name in the overview's table, refreshed live
	tb.wait("a refresh", `document.getElementById("live-status").dataset.state === "live"`)
	time.Sleep(1500 * time.Millisecond)
	tb.clean("overview with the hostile name")

	// Pause, pressed in the page.
	tb.visit("queue", base+"/queue?name=emails")
	tb.click("#pause")
	tb.shot("pause-done")
	tb.clean("pause")
	if p := n.stats(t, "emails")["paused"]; p != int64(1) && p != true {
		t.Fatalf("after pressing Pause the server says paused=%v", p)
	}
	tb.visit("queue-paused", base+"/queue?name=emails")
	if got := tb.text("#queue-status"); got != "paused" {
		t.Errorf("the queue page shows status %q after the pause", got)
	}

	// Retry, pressed on the failed job's page.
	tb.visit("job", base+"/job?id="+url.QueryEscape(failed))
	if got := tb.text("#last-error"); got != "render failed: <b>template</b> missing" {
		t.Errorf("last error shows %q", got)
	}
	tb.click("#retry")
	if got := tb.text("#result"); !strings.Contains(got, "queued again") {
		t.Errorf("after pressing Retry the page says %q", got)
	}
	job := n.do(t, "JOBGET", failed)
	if !strings.Contains(strings.Join(flatten(job), " "), "queued") {
		t.Fatalf("after pressing Retry the job is %v, want queued", job)
	}

	tb.visit("policies", base+"/policies")
	if got := tb.text(`[data-policy="concurrency:smtp"] [data-col="usage"]`); got != "2 / 2" {
		t.Errorf("policies page shows smtp at %q, want 2 / 2", got)
	}
	tb.visit("server", base+"/server")
	port := n.srv.Addrs()[0][strings.LastIndexByte(n.srv.Addrs()[0], ':')+1:]
	if got := tb.text(`[data-info="tcp_port"]`); got != port {
		t.Errorf("server page shows tcp_port %q, want %s", got, port)
	}
	tb.visit("queue-failed", base+"/queue?name=reports&state=all")
	tb.visit("job-bytes", base+"/job?id="+url.QueryEscape(firstQueued(t, n, "reports")))
	if got := tb.text("#payload"); !strings.Contains(got, "00 01 02 20 6e 6f 74") {
		t.Errorf("a binary payload shows as %q, want a hex dump", got)
	}
}

// In a real browser: the queue page filters by fair group and pages
// with the job search; a bulk retry pressed in the page changes the
// server's state and shows JOBBULK's counts; the job page shows a result
// and progress, and a <script> result never runs.
func TestBrowserSearchBulkAndResult(t *testing.T) {
	n := startNode(t, nil)
	for i := 0; i < 60; i++ {
		n.failedIn(t, "mail", "smtp timeout", "GROUP", "acme")
		if i%6 == 0 {
			n.failedIn(t, "mail", "smtp timeout", "GROUP", "zeta")
		}
	}
	id := n.do(t, "JOBPUSH", "reports", "render", `{"report":"weekly"}`).(string)
	r := n.do(t, "JOBRESERVE", "w", 60000, "QUEUES", "reports").([]any)
	tok := fieldOf(r, "token")
	n.do(t, "JOBPROGRESS", tok, `{"done":3,"of":10}`)
	n.do(t, "JOBACK", tok, "RESULT", xssPayload)

	tb := newTab(t, true)
	tb.visit("queue-failed", n.base+"/queue?name=mail&state=failed")
	if _, err := chromedp.Run(tb.ctx, chromedp.SetValue(`input[name="group"]`, "acme")); err != nil {
		t.Fatal(err)
	}
	tb.click("#filter")
	tb.shot("queue-group")
	tb.clean("the group filter")
	groups := `Array.from(document.querySelectorAll("tr[data-job] td:nth-child(4)")).map(td => td.textContent)`
	// A page asks the search for 50; like SCAN's COUNT that is a hint,
	// and a page may hold a few more (a table slot's jobs come together).
	first := tb.eval(groups).([]any)
	if len(first) < 50 || len(first) >= 60 {
		t.Errorf("the first page lists %d jobs, want 50 or a few more, and a next page", len(first))
	}
	tb.click("#next")
	tb.clean("the next page")
	second := tb.eval(groups).([]any)
	if len(first)+len(second) != 60 {
		t.Errorf("the pages list %d and %d jobs, want 60 in all", len(first), len(second))
	}
	for _, g := range append(first, second...) {
		if g != "acme" {
			t.Fatalf("a job of group %v on the pages of group acme", g)
		}
	}

	tb.visit("queue-group", n.base+"/queue?name=mail&state=failed&group=acme")
	tb.click("#retry-all")
	if got := tb.text("#question"); !strings.Contains(got, "group acme") {
		t.Errorf("the question says %q, not the group", got)
	}
	tb.click("#confirm")
	tb.shot("bulk-retry-done")
	tb.clean("bulk retry")
	if got := tb.text("#result"); !strings.Contains(got, "60 jobs queued again; skipped: 0 no longer in a state the action applies to, 0 gone meanwhile.") {
		t.Errorf("after the bulk retry the page says %q", got)
	}
	if st := n.stats(t, "mail"); st["failed"] != int64(10) || st["queued"] != int64(60) {
		t.Errorf("after the bulk retry the server has %v, want zeta's 10 failed and 60 queued", st)
	}

	tb.visit("job-result", n.base+"/job?id="+url.QueryEscape(id))
	if got := tb.text("#job-result"); got != xssPayload {
		t.Errorf("the result shows %q, want %q as text", got, xssPayload)
	}
	if got := tb.text("#job-progress"); !strings.Contains(got, `"done": 3,`) {
		t.Errorf("the progress shows %q, want it indented", got)
	}
	if v := tb.eval(`document.scripts.length`); v != float64(1) {
		t.Errorf("the job page has %v scripts, want only the dashboard's own", v)
	}
	time.Sleep(300 * time.Millisecond)
	tb.clean("the job page with a <script> result")
}

// With scripts off the pages still read: the figures are in the HTML.
func TestBrowserWithoutJavaScript(t *testing.T) {
	n := startNode(t, nil)
	for i := 0; i < 4; i++ {
		n.do(t, "JOBPUSH", "emails", "send", "x")
	}
	tb := newTab(t, false)
	tb.visit("overview-nojs", n.base+"/")
	if got := tb.text(`[data-figure="queued"]`); got != "4" {
		t.Errorf("without JavaScript the overview shows %q queued, want 4", got)
	}
	if got := tb.text("#live-status"); !strings.Contains(got, "with JavaScript on") {
		t.Errorf("without JavaScript the page claims to be live: %q", got)
	}
	tb.visit("queue-nojs", n.base+"/queue?name=emails")
	if v := tb.eval(`document.querySelectorAll("tr[data-job]").length`); v != float64(4) {
		t.Errorf("without JavaScript the queue page lists %v jobs, want 4", v)
	}
}

func flatten(v any) []string {
	var out []string
	switch t := v.(type) {
	case []any:
		for _, x := range t {
			out = append(out, flatten(x)...)
		}
	case map[any]any:
		for k, x := range t {
			out = append(out, flatten(k)...)
			out = append(out, flatten(x)...)
		}
	case string:
		out = append(out, t)
	}
	return out
}

func firstQueued(t *testing.T, n *node, queue string) string {
	r := n.do(t, "QUEUEPEEK", queue, "COUNT", 1).([]any)
	if len(r) == 0 {
		t.Fatalf("no queued job in %s", queue)
	}
	return fieldOf(r, "id")
}

// TestScreenshots writes the docs' screenshots (docs/dashboard/*.png) when
// SLUICE_DASHBOARD_SHOTS names a folder: a node under a minute of mixed
// work, then every page at 1280×800.
//
//	SLUICE_DASHBOARD_SHOTS=$PWD/docs/dashboard go test -run TestScreenshots ./dashboard/
func TestScreenshots(t *testing.T) {
	dir := os.Getenv("SLUICE_DASHBOARD_SHOTS")
	if dir == "" {
		t.Skip("SLUICE_DASHBOARD_SHOTS not set")
	}
	n := startNode(t, nil)
	n.do(t, "POLICYSET", "CONCURRENCY", "smtp", 5)
	n.do(t, "POLICYSET", "RATELIMIT", "stripe", 20, 10000)
	n.do(t, "POLICYSET", "CONCURRENCY", "pdf", 2)
	ctx := context.Background()
	stop := make(chan struct{})
	work := func(i int) {
		phase := float64(i%200) / 200
		for k := 0; k < 5+int(20*phase); k++ {
			n.do(t, "JOBPUSH", "emails", "send", `{"to":"user`+strconv.Itoa(i)+`@example.com","template":"welcome"}`, "CONCURRENCY", "smtp",
				"GROUP", "tenant-"+strconv.Itoa(k%3))
		}
		n.do(t, "JOBPUSH", "billing", "charge", `{"customer":"cus_`+strconv.Itoa(i)+`","cents":1299}`, "RATELIMIT", "stripe")
		if i%3 == 0 {
			n.do(t, "JOBPUSH", "reports", "render", `{"report":"weekly","page":`+strconv.Itoa(i)+`}`, "CONCURRENCY", "pdf")
		}
		if i%50 == 0 {
			n.do(t, "JOBPUSH", "images", "resize", "\x89PNG\r\n\x1a\n binary", "DELAY", 3_600_000)
		}
		r, err := n.rdb.Do(ctx, "JOBRESERVE", "worker-1", 30000, "COUNT", 8, "QUEUES", "emails", "billing", "reports").Slice()
		if err == nil {
			for k, j := range r {
				tok := fieldOf([]any{j}, "token")
				switch {
				case k == 0 && i%7 == 0:
					n.do(t, "JOBFAIL", tok, "ERROR", "SMTP 421 4.7.0 try again later")
				case k < 5 || i%4 == 0:
					n.do(t, "JOBACK", tok)
				}
			}
		}
	}
	for i := 0; i < 400; i++ {
		work(i)
		time.Sleep(100 * time.Millisecond)
	}
	done := make(chan struct{})
	go func() { // the work goes on while the pages are shot
		defer close(done)
		for i := 400; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				work(i)
			}
		}
	}()
	defer func() { close(stop); <-done }()
	n.failedJob(t, "reports", "render failed: font \"Inter\" missing")
	n.do(t, "QUEUEPAUSE", "images")
	blocked := firstQueued(t, n, "reports")
	ended := n.do(t, "JOBPUSH", "exports", "export", `{"customer":"cus_42","format":"csv"}`, "GROUP", "tenant-1", "TIMEOUT", 600000).(string)
	r := n.do(t, "JOBRESERVE", "worker-2", 30000, "QUEUES", "exports").([]any)
	n.do(t, "JOBPROGRESS", fieldOf(r, "token"), `{"rows":120000,"of":120000}`)
	n.do(t, "JOBACK", fieldOf(r, "token"), "RESULT", `{"url":"https://files.example.com/cus_42.csv","rows":120000,"bytes":9182734}`)

	tb := newTab(t, true)
	tb.dir = dir
	tb.visit("overview", n.base+"/")
	tb.wait("the live refresh", `document.getElementById("live-status").dataset.state === "live"`)
	time.Sleep(1500 * time.Millisecond)
	tb.shot("overview")
	tb.visit("queue", n.base+"/queue?name=emails")
	tb.visit("job", n.base+"/job?id="+url.QueryEscape(blocked))
	tb.visit("job-result", n.base+"/job?id="+url.QueryEscape(ended))
	tb.visit("policies", n.base+"/policies")
	tb.visit("server", n.base+"/server")
}
