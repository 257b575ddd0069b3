package dashboard

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"encoding/json"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"sluice/metrics"
	"sluice/protocol"
	"sluice/store"
)

// page is what every template gets: the page's own data in Data.
type page struct {
	Title   string
	Nav     string // which tab is lit
	User    string // "" when the dashboard is open
	CSRF    string
	Partial bool // only the live part (the overview's refresh)
	Data    any
}

var funcs = template.FuncMap{
	"ms":      formatMillis,
	"rate":    rate,
	"bar":     bar,
	"words":   blockedWords,
	"reasons": blockedReasons,
	"short":   short,
	"link":    func(path string, kv ...string) string { return path + "?" + queryString(kv...) },
	"inc":     func(i int) int { return i + 1 },
	"nonzero": func(v int64) bool { return v != 0 },
	"mul1000": func(v int64) int64 { return v * 1000 },
	"span":    span,
}

// parsePages parses each page with the layout.
func parsePages() (map[string]*template.Template, error) {
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(assets, n)
		if err != nil {
			return nil, err
		}
		out[name] = t
	}
	return out, nil
}

// render writes a page; with p.Partial, only its "live" block.
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, name string, p page) {
	if p.CSRF == "" {
		p.CSRF = d.csrfToken(w, r)
	}
	if _, open := d.open(); !open {
		if u := d.user(r); u != nil {
			p.User = u.Name()
		}
	}
	var b bytes.Buffer
	tmpl := "layout.html"
	if p.Partial {
		tmpl = "live"
	}
	if err := d.pages[name].ExecuteTemplate(&b, tmpl, p); err != nil {
		d.src.Log.Error().Err(err).Str("page", name).Msg("dashboard page failed")
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b.Bytes())
}

// ---- overview ----------------------------------------------------------------

type overviewData struct {
	Queues    []queueRow // the rows shown: the first overviewRows unless All
	Count     int        // queues holding jobs
	All       bool
	Totals    store.QueueStats
	Charts    []chart
	UpdatedAt int64
	Took      time.Duration
}

type queueRow struct {
	store.QueueStats
	WaitP50, WaitP99, RunP50, RunP99 string
}

// overviewRows is how many queues the overview lists unless asked for
// all: the ones that most need a look first. Rendering a row costs more
// than reading it, and a thousand rows a second cost a busy server pushes.
const overviewRows = 100

// attention orders statuses for the overview: paused and throttled
// queues first.
var attention = map[string]int{"paused": 0, "throttled": 1, "active": 2, "idle": 3}

// overview gathers every queue's counts, one QueueStats (one hold of its
// shard's lock) at a time.
func (d *Dashboard) overviewData(all bool) overviewData {
	began := time.Now()
	now := d.src.Now()
	st := d.src.Store
	var o overviewData
	for _, name := range st.Queues(now) {
		s, err := st.QueueStats(now, name)
		if err != nil {
			continue
		}
		row := queueRow{QueueStats: s, WaitP50: "–", WaitP99: "–", RunP50: "–", RunP99: "–"}
		if wait, run, ok := d.src.Metrics.Durations(name); ok {
			row.WaitP50, row.WaitP99 = quantile(wait, 0.5), quantile(wait, 0.99)
			row.RunP50, row.RunP99 = quantile(run, 0.5), quantile(run, 0.99)
		}
		o.Queues = append(o.Queues, row)
		t := &o.Totals
		t.Queued += s.Queued
		t.Scheduled += s.Scheduled
		t.Reserved += s.Reserved
		t.Running += s.Running
		t.RetryPending += s.RetryPending
		t.Failed += s.Failed
		t.Expired += s.Expired
		t.BlockedConcurrency += s.BlockedConcurrency
		t.BlockedRateLimit += s.BlockedRateLimit
		t.PushedTotal += s.PushedTotal
		t.SucceededTotal += s.SucceededTotal
		t.FailedTotal += s.FailedTotal
	}
	o.Count, o.All = len(o.Queues), all
	if !all && len(o.Queues) > overviewRows {
		slices.SortStableFunc(o.Queues, func(a, b queueRow) int {
			if c := cmp.Compare(attention[a.Status], attention[b.Status]); c != 0 {
				return c
			}
			if c := cmp.Compare(b.Failed, a.Failed); c != 0 {
				return c
			}
			return cmp.Compare(b.Queued, a.Queued)
		})
		o.Queues = o.Queues[:overviewRows]
	}
	_, rates := d.ring.rates()
	for k := range rates {
		o.Charts = append(o.Charts, makeChart(seriesNames[k], rates[k]))
	}
	o.UpdatedAt = now
	o.Took = time.Since(began)
	return o
}

func (d *Dashboard) overview(w http.ResponseWriter, r *http.Request, _ *protocol.User) {
	partial := r.URL.Query().Get("partial") != ""
	all := r.URL.Query().Get("all") != ""
	d.render(w, r, "overview", page{Title: "Overview", Nav: "overview", Partial: partial, Data: d.overviewData(all)})
}

// quantile reads the q-quantile off a duration histogram as the upper
// bound of the bucket it falls in ("≤ 25 ms"), which is all the buckets
// know; "–" without observations.
func quantile(counts []uint64, q float64) string {
	var n uint64
	for _, c := range counts {
		n += c
	}
	if n == 0 {
		return "–"
	}
	want := uint64(q*float64(n) + 0.999999)
	var cum uint64
	for i, c := range counts {
		cum += c
		if cum >= want {
			if i < len(metrics.DurationBounds) {
				return "≤ " + formatDur(metrics.DurationBounds[i])
			}
			break
		}
	}
	return "> " + formatDur(metrics.DurationBounds[len(metrics.DurationBounds)-1])
}

func formatDur(ms int64) string {
	switch {
	case ms < 1000:
		return strconv.FormatInt(ms, 10) + " ms"
	case ms < 60000:
		return strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64) + " s"
	default:
		return strconv.FormatFloat(float64(ms)/60000, 'f', -1, 64) + " min"
	}
}

// ---- queue page ------------------------------------------------------------------

// stateFilters are the states the queue page filters by, JOBSCAN's
// (store.States), queued first: the one read in reservation order; then
// "all".
var stateFilters = func() []string {
	out := []string{store.Queued.String()}
	for _, st := range store.States() {
		if st != store.Queued {
			out = append(out, st.String())
		}
	}
	return append(out, "all")
}()

// filter is what the queue page lists.
type filter struct {
	Queue, State, Handler, Group, Key, Error string
}

func readFilter(v url.Values) filter {
	f := filter{Queue: v.Get("name"), State: v.Get("state"), Handler: strings.TrimSpace(v.Get("handler")),
		Group: strings.TrimSpace(v.Get("group")), Key: strings.TrimSpace(v.Get("key")), Error: v.Get("error")}
	if !slices.Contains(stateFilters, f.State) {
		f.State = "queued"
	}
	return f
}

// match reports whether j passes the filter.
func (f filter) match(j store.Job) bool {
	if j.Queue != strings.TrimSpace(f.Queue) {
		return false
	}
	if f.State != "all" && j.State.String() != f.State {
		return false
	}
	if f.Handler != "" && j.Handler != f.Handler {
		return false
	}
	if f.Group != "" && j.Group != f.Group {
		return false
	}
	if f.Key != "" && !hasKey(j, f.Key) {
		return false
	}
	return f.Error == "" || containsFold(j.LastError, f.Error)
}

// hasKey reports whether key is one of j's concurrency or rate-limit keys.
func hasKey(j store.Job, key string) bool {
	return j.ConcurrencyKey == key || j.RateLimitKey == key ||
		slices.Contains(j.ConcurrencyKeys, key) || slices.Contains(j.RateLimitKeys, key)
}

// containsFold reports whether s contains sub, ASCII letters in either
// case: what the page's "error contains" has always meant, and what
// errorGlob says to JOBBULK.
func containsFold(s, sub string) bool {
	return strings.Contains(asciiLower(s), asciiLower(sub))
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// errorGlob is the ERROR pattern of JOBSCAN and JOBBULK that matches what
// containsFold(error, sub) does: sub anywhere, each ASCII letter as a
// class of its two cases, the glob's own characters escaped.
func errorGlob(sub string) string {
	var b strings.Builder
	b.WriteByte('*')
	for i := 0; i < len(sub); i++ {
		c := sub[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
			b.WriteString("[" + string(rune(c|0x20)) + string(rune(c&^0x20)) + "]")
		case c == '*' || c == '?' || c == '[' || c == ']' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('*')
	return b.String()
}

// scanFilter is the job search's filter for f (the key aside: JOBSCAN
// has none, so it is checked on each job found).
func (f filter) scanFilter() store.ScanFilter {
	sf := store.ScanFilter{Queue: strings.TrimSpace(f.Queue), Handler: f.Handler, Group: f.Group}
	if st, ok := store.ParseState(f.State); ok {
		sf.State = st
	}
	if f.Error != "" {
		sub := f.Error
		sf.Error = func(e string) bool { return containsFold(e, sub) }
	}
	return sf
}

// values are the filter as query parameters (the queue's name included).
func (f filter) values() []string {
	return []string{"name", f.Queue, "state", f.State, "handler", f.Handler, "group", f.Group, "key", f.Key, "error", f.Error}
}

// Bounds of one page of the queue page, and of one press of a bulk action
// that the server's JOBBULK cannot do alone (a key filter).
const (
	pageJobs  = 50   // jobs listed per page
	scanSlots = 4096 // table slots a page of a non-queued state visits at most
	scanCall  = 512  // of them per call of the job search
	bulkJobs  = 1000 // jobs one such bulk press changes at most
	bulkSlots = 1 << 16
)

// listing is a page of jobs and where the next one starts ("" at the end).
type listing struct {
	Jobs    []store.Job
	Next    string
	Scanned int // ids (or queued jobs) looked at
}

// list reads up to n jobs matching f from cursor on. Queued jobs come
// from PeekPage, in reservation order, a slice at a time; every other
// state (and "all") from the job search JOBSCAN runs (store.ScanJobs),
// at most slots table slots per call, each id found read with Get. Either
// way no lock is held for more than a slice.
func (d *Dashboard) list(f filter, cursor string, n, slots int) (listing, error) {
	now := d.src.Now()
	var out listing
	if f.State == "queued" {
		after, err := store.ParsePeekCursor(strings.TrimPrefix(cursor, "p"))
		if cursor == "" {
			after, err = store.PeekCursor{}, nil
		}
		if err != nil {
			return out, err
		}
		pg, err := d.src.Store.PeekPage(now, f.Queue, store.PeekOptions{Count: n, After: after, MaxBytes: 1 << 20})
		if err != nil {
			return out, err
		}
		out.Scanned = len(pg.Jobs)
		for _, j := range pg.Jobs {
			if f.match(j) {
				out.Jobs = append(out.Jobs, j)
			}
		}
		if !pg.Done {
			out.Next = "p" + pg.Next.String()
		}
		return out, nil
	}
	c := "0"
	if cursor != "" {
		if !strings.HasPrefix(cursor, "j") || cursor == "j0" {
			return out, store.ErrScanCursor
		}
		c = cursor[1:]
	}
	sf := f.scanFilter()
	for visited := 0; visited < slots && len(out.Jobs) < n; {
		step := min(scanCall, slots-visited)
		next, ids, err := d.src.Store.ScanJobs(c, sf, n-len(out.Jobs), step)
		if err != nil {
			return out, err
		}
		visited += step
		for _, id := range ids {
			out.Scanned++
			if j, ok := d.src.Store.Get(now, id); ok && f.match(j) {
				out.Jobs = append(out.Jobs, j)
			}
		}
		if c = next; c == "0" {
			break
		}
	}
	if c != "0" {
		out.Next = "j" + c
	}
	return out, nil
}

type queueData struct {
	Stats   store.QueueStats
	Filter  filter
	States  []string
	List    listing
	Cursor  string
	Error   string
	Queued  bool
	NextURL string
	// Bulk says which bulk actions apply to the state filtered by: a
	// cancel to unfinished jobs and dead letters, a delete to finished
	// ones (a retry to failed ones, the template's own test).
	Bulk struct{ Cancel, Delete bool }
}

func (d *Dashboard) queuePage(w http.ResponseWriter, r *http.Request, _ *protocol.User) {
	f := readFilter(r.URL.Query())
	data := queueData{Filter: f, States: stateFilters, Cursor: r.URL.Query().Get("cursor"), Queued: f.State == "queued"}
	if st, ok := store.ParseState(f.State); ok {
		data.Bulk.Cancel, data.Bulk.Delete = !st.Terminal() || st == store.Failed, st.Terminal()
	} else { // all
		data.Bulk.Cancel, data.Bulk.Delete = true, true
	}
	stats, err := d.src.Store.QueueStats(d.src.Now(), f.Queue)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		data.Error = errText(err)
		d.render(w, r, "queue", page{Title: "Queue", Data: data})
		return
	}
	data.Stats = stats
	if data.List, err = d.list(f, data.Cursor, pageJobs, scanSlots); err != nil {
		data.Error = errText(err)
	}
	if data.List.Next != "" {
		data.NextURL = "/queue?" + queryString(append(f.values(), "cursor", data.List.Next)...)
	}
	d.render(w, r, "queue", page{Title: "Queue " + stats.Queue, Data: data})
}

// ---- job page ------------------------------------------------------------------------

type jobData struct {
	Job      store.Job
	Found    bool
	ID       string
	Payload  payloadView
	Result   *payloadView // JOBACK's RESULT; nil: none
	Progress *payloadView // the last JOBPROGRESS; nil: none
	CKeys    []string     // every concurrency key, the first included
	RKeys    []string     // every rate-limit key
}

// keysOf is every key of a kind of a job: its list when it has several,
// else the one key, if any.
func keysOf(all []string, first string) []string {
	if len(all) > 0 {
		return all
	}
	if first != "" {
		return []string{first}
	}
	return nil
}

type payloadView struct {
	Kind string // json, text or bytes
	Text string
	Size int
}

// viewPayload shows a payload: indented when it is JSON, as text when it
// is UTF-8 without control characters, else as a hex dump.
func viewPayload(p []byte) payloadView {
	v := payloadView{Size: len(p)}
	var b bytes.Buffer
	if json.Valid(p) && json.Indent(&b, p, "", "  ") == nil {
		v.Kind, v.Text = "json", b.String()
		return v
	}
	if utf8.Valid(p) && !bytes.ContainsFunc(p, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' && r != '\r' || r == 0x7f }) {
		v.Kind, v.Text = "text", string(p)
		return v
	}
	const most = 64 << 10
	v.Kind, v.Text = "bytes", hex.Dump(p[:min(len(p), most)])
	if len(p) > most {
		v.Text += "… (" + strconv.Itoa(len(p)-most) + " more bytes)"
	}
	return v
}

func (d *Dashboard) jobPage(w http.ResponseWriter, r *http.Request, _ *protocol.User) {
	id := r.URL.Query().Get("id")
	data := jobData{ID: id}
	if id != "" {
		data.Job, data.Found = d.src.Store.Get(d.src.Now(), id)
	}
	if !data.Found {
		w.WriteHeader(http.StatusNotFound)
	} else {
		j := data.Job
		data.Payload = viewPayload(j.Payload)
		if j.Result != nil {
			v := viewPayload(j.Result)
			data.Result = &v
		}
		if j.Progress != nil {
			v := viewPayload(j.Progress)
			data.Progress = &v
		}
		data.CKeys, data.RKeys = keysOf(j.ConcurrencyKeys, j.ConcurrencyKey), keysOf(j.RateLimitKeys, j.RateLimitKey)
	}
	d.render(w, r, "job", page{Title: "Job " + id, Data: data})
}

// blockedWords turns JOBGET's blocked_by into a sentence; one that
// names several keys (joined by ", ") into one clause a key.
func blockedWords(b string) string {
	if b == "" {
		return ""
	}
	return "waiting: " + strings.Join(blockedReasons(b), "; ")
}

// blockedReasons words each reason of a blocked_by, one a refusing key
// (or "the queue is paused").
func blockedReasons(b string) []string {
	if b == "" {
		return nil
	}
	parts := store.SplitBlockedBy(b)
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = strings.TrimPrefix(blockedReason(p), "waiting: ")
	}
	return out
}

// blockedReason words one reason of a blocked_by.
func blockedReason(b string) string {
	switch {
	case b == "":
		return ""
	case b == "paused":
		return "waiting: the queue is paused"
	case strings.HasPrefix(b, "concurrency:"):
		rest := strings.TrimPrefix(b, "concurrency:")
		if i := strings.LastIndexByte(rest, ' '); i >= 0 {
			return "waiting: concurrency key " + rest[:i] + " is at " + rest[i+1:]
		}
	case strings.HasPrefix(b, "throttled:"):
		rest := strings.TrimPrefix(b, "throttled:")
		if i := strings.LastIndex(rest, " until "); i >= 0 {
			if at, err := strconv.ParseInt(rest[i+len(" until "):], 10, 64); err == nil {
				return "waiting: key " + rest[:i] + " is throttled until " + formatMillis(at)
			}
		}
	case strings.HasPrefix(b, "ratelimit:"):
		rest := strings.TrimPrefix(b, "ratelimit:")
		if i := strings.LastIndex(rest, " until "); i >= 0 {
			if at, err := strconv.ParseInt(rest[i+len(" until "):], 10, 64); err == nil {
				return "waiting: rate limit key " + rest[:i] + " is full until " + formatMillis(at)
			}
		}
	case strings.HasPrefix(b, "breaker:"):
		rest := strings.TrimPrefix(b, "breaker:")
		if i := strings.LastIndex(rest, " open until "); i >= 0 {
			if at, err := strconv.ParseInt(rest[i+len(" open until "):], 10, 64); err == nil {
				return "waiting: circuit breaker " + rest[:i] + " is open until " + formatMillis(at)
			}
		}
		if i := strings.LastIndex(rest, " half-open probes "); i >= 0 {
			return "waiting: circuit breaker " + rest[:i] + " is half-open, probes " + rest[i+len(" half-open probes "):]
		}
	}
	return "waiting: " + b
}

// ---- policies page -------------------------------------------------------------------

func (d *Dashboard) policiesPage(w http.ResponseWriter, r *http.Request, _ *protocol.User) {
	d.render(w, r, "policies", page{Title: "Policies", Nav: "policies", Data: d.src.Store.Policies(d.src.Now())})
}

// ---- server page ---------------------------------------------------------------------

type serverData struct {
	Sections []infoSection
	Clients  []protocol.ClientInfo
	Slow     []protocol.SlowlogEntry
	Error    string
}

type infoSection struct {
	Name  string
	Lines [][2]string
}

// slowShown is how many slow log entries the page lists.
const slowShown = 50

func (d *Dashboard) serverPage(w http.ResponseWriter, r *http.Request, u *protocol.User) {
	var data serverData
	v, err := d.run(r, u, "info", "everything")
	if err != nil {
		data.Error = errText(err)
	} else {
		data.Sections = parseInfo(replyText(v))
	}
	data.Clients = d.src.Server.Clients()
	data.Slow = d.src.Server.Slowlog(slowShown)
	d.render(w, r, "server", page{Title: "Server", Nav: "server", Data: data})
}

func replyText(v any) string {
	switch t := v.(type) {
	case protocol.Verbatim:
		return string(t)
	case string:
		return t
	case []byte:
		return string(t)
	}
	return ""
}

// parseInfo splits INFO's text into its sections.
func parseInfo(s string) []infoSection {
	var out []infoSection
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.HasPrefix(line, "# "):
			out = append(out, infoSection{Name: line[2:]})
		case line == "" || len(out) == 0:
		default:
			k, v, _ := strings.Cut(line, ":")
			out[len(out)-1].Lines = append(out[len(out)-1].Lines, [2]string{k, v})
		}
	}
	return out
}

// ---- helpers ------------------------------------------------------------------------

// formatMillis prints Unix ms in UTC; 0 is "–".
func formatMillis(ms int64) string {
	if ms == 0 {
		return "–"
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05.000Z")
}

// short cuts text to n runes.
func short(n int, s string) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}

// queryString encodes name, value pairs, leaving out empty values.
func queryString(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			v.Set(kv[i], kv[i+1])
		}
	}
	return v.Encode()
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// errText is an error as a client would read it.
func errText(err error) string {
	t, _ := protocol.ErrorText(err)
	return t
}
