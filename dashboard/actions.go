package dashboard

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"sluice/protocol"
)

// The actions, each the command a client would send. Bulk ones are the
// server's JOBBULK over the page's filter.
var actions = map[string]struct {
	command string
	confirm bool   // ask first: it cannot be undone
	bulk    string // JOBBULK's action, for every job matching the filter
}{
	"pause":      {command: "queuepause"},
	"resume":     {command: "queueresume"},
	"purge":      {command: "queuepurge", confirm: true},
	"retry":      {command: "jobretry"},
	"cancel":     {command: "jobcancel", confirm: true},
	"delete":     {command: "jobdelete", confirm: true},
	"retry-all":  {command: "jobbulk", confirm: true, bulk: "RETRY"},
	"cancel-all": {command: "jobbulk", confirm: true, bulk: "CANCEL"},
	"delete-all": {command: "jobbulk", confirm: true, bulk: "DELETE"},
}

// run runs one command as u, through the server's own table.
func (d *Dashboard) run(r *http.Request, u *protocol.User, args ...string) (any, error) {
	cmd := d.src.Server.Table().Lookup([]byte(args[0]))
	if cmd == nil {
		return nil, protocol.Error("ERR unknown command '" + args[0] + "'")
	}
	bs := make([][]byte, len(args))
	for i, a := range args {
		bs[i] = []byte(a)
	}
	c := d.src.Server.DetachedAs(u, "dashboard:"+r.RemoteAddr)
	return c.Run(cmd, bs)
}

type actionData struct {
	Op, Queue, ID string
	Filter        filter
	Confirm       bool   // asking, not done
	Message       string // what happened
	Failed        bool
	Back          string
	Next          string // a bulk action's cursor to go on from
}

// action runs a POSTed action: a CSRF token, an op, and a queue, a job id
// or a filter. An op that asks for a confirmation without confirm=yes
// renders the question instead.
func (d *Dashboard) action(w http.ResponseWriter, r *http.Request, u *protocol.User) {
	if !d.csrfOK(r) {
		http.Error(w, "bad or missing CSRF token: reload the page and try again", http.StatusForbidden)
		return
	}
	f := r.PostForm
	op := f.Get("op")
	a, ok := actions[op]
	if !ok {
		http.Error(w, "unknown action", http.StatusBadRequest)
		return
	}
	data := actionData{Op: op, Queue: f.Get("queue"), ID: f.Get("id"), Filter: readFilter(f)}
	data.Filter.Queue = data.Queue
	data.Back = "/queue?" + queryString(data.Filter.values()...)
	if data.ID != "" && a.bulk == "" && op != "delete" {
		data.Back = "/job?" + queryString("id", data.ID)
	}
	target := data.Queue
	if op == "retry" || op == "cancel" || op == "delete" {
		target = data.ID
	}
	if strings.TrimSpace(target) == "" {
		http.Error(w, "no queue or job named", http.StatusBadRequest)
		return
	}
	if a.confirm && f.Get("confirm") != "yes" {
		data.Confirm = true
		d.render(w, r, "action", page{Title: "Confirm", Data: data})
		return
	}
	status := http.StatusOK
	if a.bulk != "" {
		data.Message, data.Next, data.Failed = d.bulk(r, u, a.bulk, data.Filter, f.Get("cursor"))
	} else {
		v, err := d.run(r, u, a.command, target)
		if err != nil {
			data.Failed, data.Message = true, errText(err)
		} else {
			data.Message = describe(op, target, v)
		}
	}
	if data.Failed {
		status = http.StatusConflict
	}
	w.WriteHeader(status)
	d.render(w, r, "action", page{Title: "Done", Data: data})
}

// bulk runs JOBBULK action over the jobs matching f, through the server's
// table as u, and says what it changed and skipped. JOBBULK has no key
// filter: with one, the page finds the jobs itself (the job search, then
// each job's keys) from cursor on, at most bulkJobs jobs and bulkSlots
// slots a press, and runs JOBBULKIDS, the command of JOBBULK's slices,
// on them 256 at a time; next is where to go on from.
func (d *Dashboard) bulk(r *http.Request, u *protocol.User, action string, f filter, cursor string) (msg, next string, failed bool) {
	var total bulkCounts
	if f.Key == "" {
		args := []string{"jobbulk", action, "queue", f.Queue}
		if f.State != "all" {
			args = append(args, "state", f.State)
		}
		for _, kv := range [][2]string{{"handler", f.Handler}, {"group", f.Group}} {
			if kv[1] != "" {
				args = append(args, kv[0], kv[1])
			}
		}
		if f.Error != "" {
			args = append(args, "error", errorGlob(f.Error))
		}
		v, err := d.run(r, u, args...)
		if err != nil {
			return errText(err), "", true
		}
		total.add(v)
		return total.words(action), "", false
	}
	l, err := d.list(f, cursor, bulkJobs, bulkSlots)
	if err != nil {
		return errText(err), "", true
	}
	for ids := l.Jobs; len(ids) > 0; {
		k := min(len(ids), 256)
		args := []string{"jobbulkids", action}
		for _, j := range ids[:k] {
			args = append(args, j.ID)
		}
		ids = ids[k:]
		v, err := d.run(r, u, args...)
		if err != nil {
			return total.words(action) + "; then refused: " + errText(err), "", true
		}
		total.add(v)
	}
	msg = total.words(action)
	if l.Next != "" {
		msg += " More jobs may match: press again to go on."
	}
	return msg, l.Next, false
}

// bulkCounts are a JOBBULK's reply: jobs changed, and skipped as no
// longer in a state the action applies to, or gone.
type bulkCounts struct{ changed, wrong, gone int64 }

// add adds up a JOBBULK or JOBBULKIDS reply (a map: changed, skipped:
// {wrongstate, nojob}).
func (b *bulkCounts) add(v any) {
	get := func(v any, key string) any {
		if m, ok := v.(protocol.Map); ok {
			for i := 0; i+1 < len(m); i += 2 {
				if k, _ := m[i].(string); k == key {
					return m[i+1]
				}
			}
		}
		return nil
	}
	n := func(v any) int64 { x, _ := v.(int64); return x }
	b.changed += n(get(v, "changed"))
	sk := get(v, "skipped")
	b.wrong += n(get(sk, "wrongstate"))
	b.gone += n(get(sk, "nojob"))
}

// words says what a bulk action did, as JOBBULK counted it.
func (b bulkCounts) words(action string) string {
	done := map[string]string{"RETRY": "queued again", "CANCEL": "cancelled", "DELETE": "deleted"}[action]
	return fmt.Sprintf("%d %s %s; skipped: %d no longer in a state the action applies to, %d gone meanwhile.",
		b.changed, plural(b.changed, "job", "jobs"), done, b.wrong, b.gone)
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// describe says what a command did.
func describe(op, target string, v any) string {
	switch op {
	case "pause":
		return "Queue " + target + " paused: reservations stop, pushes are still accepted."
	case "resume":
		return "Queue " + target + " resumed."
	case "purge":
		n, _ := v.(int64)
		return "Queue " + target + " purged: " + strconv.FormatInt(n, 10) + " jobs cancelled."
	case "retry":
		return "Job " + target + " queued again."
	case "delete":
		return "Job " + target + " deleted."
	case "cancel":
		if b, ok := v.(int64); ok && b == 0 {
			return "Job " + target + " had finished already: nothing to cancel."
		}
		return "Job " + target + " cancelled."
	}
	return "Done."
}
