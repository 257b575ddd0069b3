package dashboard_test

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// failedIn pushes a job to queue with args (GROUP and such) and fails it
// for good with errText; its id.
func (n *node) failedIn(t *testing.T, queue, errText string, args ...any) string {
	t.Helper()
	id := n.do(t, append([]any{"JOBPUSH", queue, "h", "{}"}, args...)...).(string)
	r := n.do(t, "JOBRESERVE", "w", 60000, "QUEUES", queue).([]any)
	n.do(t, "JOBFAIL", fieldOf(r, "token"), "ERROR", errText, "NORETRY")
	return id
}

var (
	rowRe  = regexp.MustCompile(`<tr data-job="([^"]+)">`)
	nextRe = regexp.MustCompile(`<a id="next" href="([^"]+)">`)
)

// listAll reads the queue page at u and every page after it; the ids
// listed, in order.
func listAll(t *testing.T, c *http.Client, base, u string) (ids []string, pages int) {
	t.Helper()
	for u != "" {
		code, body := get(t, c, base+u)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d\n%s", u, code, body)
		}
		pages++
		for _, m := range rowRe.FindAllStringSubmatch(body, -1) {
			ids = append(ids, m[1])
		}
		u = ""
		if m := nextRe.FindStringSubmatch(body); m != nil {
			u = strings.ReplaceAll(m[1], "&amp;", "&")
		}
	}
	return ids, pages
}

// The queue page finds jobs with the job search: a fair group's failed
// jobs, page after page, and no other group's; a job of several keys by
// its second key; every state JOBSCAN knows, expired included, is a
// filter.
func TestQueuePageSearch(t *testing.T) {
	n := startNode(t, nil)
	var acme []string
	for i := 0; i < 120; i++ {
		acme = append(acme, n.failedIn(t, "mail", "smtp timeout", "GROUP", "acme"))
		if i%4 == 0 {
			n.failedIn(t, "mail", "smtp timeout", "GROUP", "zeta")
		}
	}
	n.do(t, "POLICYSET", "CONCURRENCY", "b", 5)
	multi := n.do(t, "JOBPUSH", "mail", "h", "x", "CONCURRENCY", "a", "CONCURRENCY", "b").(string)
	c := browser(t)

	ids, pages := listAll(t, c, n.base, "/queue?name=mail&state=failed&group=acme")
	if pages < 3 {
		t.Errorf("120 jobs on %d pages, want pages of at most 50", pages)
	}
	slices.Sort(ids)
	slices.Sort(acme)
	if !slices.Equal(slices.Compact(ids), acme) || len(ids) != len(acme) {
		t.Errorf("group acme's failed jobs: the pages list %d (%d distinct), want the %d of acme exactly", len(ids), len(slices.Compact(ids)), len(acme))
	}
	for _, st := range []string{"all", "cancelled"} {
		if ids, _ := listAll(t, c, n.base, "/queue?name=mail&state="+st+"&key=b"); !slices.Equal(ids, []string{multi}) && st == "all" {
			t.Errorf("state all, key b: %v, want the job of keys a and b (%s)", ids, multi)
		} else if st != "all" && len(ids) != 0 {
			t.Errorf("state %s, key b: %v, want none", st, ids)
		}
	}
	_, body := get(t, c, n.base+"/queue?name=mail&state=failed")
	for _, st := range []string{"scheduled", "queued", "reserved", "running", "succeeded", "failed", "retry_pending", "cancelled", "expired", "all"} {
		if !strings.Contains(body, "<option>"+st+"</option>") && !strings.Contains(body, "<option selected>"+st+"</option>") {
			t.Errorf("the state filter has no %q", st)
		}
	}
	if !strings.Contains(body, `name="group" value=""`) {
		t.Error("the queue page has no group filter")
	}
}

// The page's "error contains" is a substring in any case, the glob's own
// characters as themselves, and a bulk retry over it (the server's
// JOBBULK with the equivalent ERROR glob) takes the jobs the page lists.
func TestBulkErrorFilterIsThePages(t *testing.T) {
	n := startNode(t, nil)
	want := []string{n.failedIn(t, "disk", "disk full [x*] on /var"), n.failedIn(t, "disk", "DISK FULL [X*]")}
	n.failedIn(t, "disk", "disk fullish")
	n.failedIn(t, "disk", "disk full [y]")
	n.failedIn(t, "disk", "disk full [xx]")
	c := browser(t)
	filter := "/queue?name=disk&state=failed&error=" + url.QueryEscape("Full [x*")
	ids, _ := listAll(t, c, n.base, filter)
	slices.Sort(ids)
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("the page lists %v for %q, want %v", ids, "Full [x*", want)
	}
	tok := csrf(t, c, n.base+filter)
	code, body := post(t, c, n.base+"/action", url.Values{"op": {"retry-all"}, "queue": {"disk"}, "state": {"failed"},
		"error": {"Full [x*"}, "csrf": {tok}, "confirm": {"yes"}})
	if code != http.StatusOK || !strings.Contains(body, "2 jobs queued again; skipped: 0") {
		t.Fatalf("retry-all: %d\n%s", code, body)
	}
	if st := n.stats(t, "disk"); st["failed"] != int64(3) || st["queued"] != int64(2) {
		t.Errorf("after the retry: %v, want 3 failed and 2 queued", st)
	}
}

// Delete every finished job matching runs JOBBULK DELETE and says its
// counts; a cancel over queued jobs of one group runs JOBBULK CANCEL;
// a finished job's page deletes it alone, an unfinished one's offers no
// delete.
func TestBulkDeleteCancelAndDeleteOne(t *testing.T) {
	n := startNode(t, nil)
	for i := 0; i < 3; i++ {
		id := n.do(t, "JOBPUSH", "q", "h", "x").(string)
		r := n.do(t, "JOBRESERVE", "w", 60000, "QUEUES", "q").([]any)
		n.do(t, "JOBACK", fieldOf(r, "token"))
		_ = id
	}
	n.failedIn(t, "q", "boom")
	one := n.failedIn(t, "q", "boom")
	for i := 0; i < 4; i++ {
		n.do(t, "JOBPUSH", "q", "h", "x", "GROUP", []string{"g1", "g2"}[i%2])
	}
	c := browser(t)
	tok := csrf(t, c, n.base+"/queue?name=q&state=all")

	// One job: a finished one's page offers Delete, which asks first.
	_, body := get(t, c, n.base+"/job?id="+one)
	if !strings.Contains(body, `id="delete"`) {
		t.Fatalf("a failed job's page has no Delete:\n%s", body)
	}
	code, body := post(t, c, n.base+"/action", url.Values{"op": {"delete"}, "queue": {"q"}, "id": {one}, "csrf": {tok}})
	if code != http.StatusOK || !strings.Contains(body, `id="confirm"`) || n.do(t, "JOBGET", one) == nil {
		t.Fatalf("delete without confirm: %d, want a question and the job kept\n%s", code, body)
	}
	code, body = post(t, c, n.base+"/action", url.Values{"op": {"delete"}, "queue": {"q"}, "id": {one}, "csrf": {tok}, "confirm": {"yes"}})
	if code != http.StatusOK || !strings.Contains(body, "deleted") {
		t.Fatalf("delete: %d\n%s", code, body)
	}
	if v, err := n.rdb.Do(t.Context(), "JOBGET", one).Result(); v != nil || err == nil {
		t.Errorf("JOBGET after the page's delete: %v %v, want nil", v, err)
	}

	// Every finished job: 3 succeeded and 1 failed.
	code, body = post(t, c, n.base+"/action", url.Values{"op": {"delete-all"}, "queue": {"q"}, "state": {"all"}, "csrf": {tok}, "confirm": {"yes"}})
	if code != http.StatusOK || !strings.Contains(body, "4 jobs deleted; skipped: 0 no longer in a state the action applies to, 0 gone meanwhile.") {
		t.Fatalf("delete-all: %d\n%s", code, body)
	}
	if st := n.stats(t, "q"); st["failed"] != int64(0) || st["queued"] != int64(4) {
		t.Errorf("after delete-all: %v, want 0 failed, the 4 queued kept", st)
	}

	// Cancel the queued jobs of group g1.
	code, body = post(t, c, n.base+"/action", url.Values{"op": {"cancel-all"}, "queue": {"q"}, "state": {"queued"}, "group": {"g1"}, "csrf": {tok}, "confirm": {"yes"}})
	if code != http.StatusOK || !strings.Contains(body, "2 jobs cancelled") {
		t.Fatalf("cancel-all of group g1: %d\n%s", code, body)
	}
	if st := n.stats(t, "q"); st["queued"] != int64(2) {
		t.Errorf("after cancelling g1: %v, want g2's 2 queued", st)
	}
	queued := firstQueued(t, n, "q")
	if _, body := get(t, c, n.base+"/job?id="+queued); strings.Contains(body, `id="delete"`) {
		t.Error("a queued job's page offers Delete")
	}
	// The queue page offers what applies to the state shown.
	_, body = get(t, c, n.base+"/queue?name=q&state=succeeded")
	if !strings.Contains(body, `id="delete-all"`) || strings.Contains(body, `id="cancel-all"`) || strings.Contains(body, `id="retry-all"`) {
		t.Errorf("the succeeded jobs' page should offer delete-all only")
	}
}

// The job page shows the result and progress (JSON indented, anything
// else as text or bytes, all escaped), the deadline and timeout, every
// key, and each refusing key of blocked_by in words.
func TestJobPageResultProgressKeys(t *testing.T) {
	n := startNode(t, nil)
	n.do(t, "POLICYSET", "CONCURRENCY", "a", 1)
	n.do(t, "POLICYSET", "CONCURRENCY", "b", 1)
	deadline := time.Now().Add(time.Hour).UnixMilli()
	id := n.do(t, "JOBPUSH", "q", "h", "x", "CONCURRENCY", "a", "CONCURRENCY", "b", "DEADLINE", deadline, "TIMEOUT", 5000).(string)
	blocked := n.do(t, "JOBPUSH", "q", "h", "y", "CONCURRENCY", "a", "CONCURRENCY", "b").(string)
	r := n.do(t, "JOBRESERVE", "w", 60000, "QUEUES", "q").([]any)
	tok := fieldOf(r, "token")
	n.do(t, "JOBPROGRESS", tok, `{"done":3,"of":10}`)
	c := browser(t)
	_, body := get(t, c, n.base+"/job?id="+id)
	for _, want := range []string{
		`id="job-progress">{
  &#34;done&#34;: 3,`,
		`id="concurrency-keys"><span class="name">a</span>, <span class="name">b</span>`,
		`id="timeout">5000 ms<`,
		`id="deadline">` + time.UnixMilli(deadline).UTC().Format("2006-01-02 15:04:05.000Z") + `<`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the running job's page lacks %q:\n%s", want, body)
		}
	}
	_, body = get(t, c, n.base+"/job?id="+blocked)
	for _, want := range []string{"<li>concurrency key a is at 1/1</li><li>concurrency key b is at 1/1</li>"} {
		if !strings.Contains(body, want) {
			t.Errorf("the blocked job's page lacks %q:\n%s", want, body)
		}
	}
	n.do(t, "JOBACK", tok, "RESULT", xssPayload)
	_, body = get(t, c, n.base+"/job?id="+id)
	if !strings.Contains(body, `id="job-result">&lt;script&gt;alert(1)&lt;/script&gt;</pre>`) || strings.Contains(body, xssPayload) {
		t.Errorf("the result is not shown as escaped text:\n%s", body)
	}
	if !strings.Contains(body, "25 bytes, text, not JSON") {
		t.Errorf("the result's kind is not said:\n%s", body)
	}
}

// The overview shows dead letters and expired jobs per queue and in all,
// each a link to the queue page of that state.
func TestOverviewExpiredAndDeadLetters(t *testing.T) {
	n := startNode(t, nil)
	n.failedIn(t, "old", "boom")
	n.do(t, "QUEUEPAUSE", "old")
	n.do(t, "JOBPUSH", "old", "h", "x", "EXPIRES", 1)
	deadline := time.Now().Add(5 * time.Second)
	for n.stats(t, "old")["expired"] != int64(1) {
		if time.Now().After(deadline) {
			t.Fatalf("the job did not expire: %v", n.stats(t, "old"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	c := browser(t)
	_, body := get(t, c, n.base+"/")
	for _, want := range []string{
		`data-figure="expired">1<`, `data-figure="failed">1<`,
		`data-col="expired"><a href="/queue?name=old&amp;state=expired">1</a>`,
		`data-col="failed"><a href="/queue?name=old&amp;state=failed">1</a>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the overview lacks %q:\n%s", want, body)
		}
	}
	if ids, _ := listAll(t, c, n.base, "/queue?name=old&state=expired"); len(ids) != 1 {
		t.Errorf("the expired jobs' page lists %v, want the one", ids)
	}
}
