package dashboard

import (
	"net/http"
	"strconv"
	"strings"

	"sluice/protocol"
)

// The actions, each the command a client would send. Bulk ones run one
// command per job.
var actions = map[string]struct {
	command string
	confirm bool // ask first: it cannot be undone
	bulk    bool // every job matching the filter
}{
	"pause":      {command: "queuepause"},
	"resume":     {command: "queueresume"},
	"purge":      {command: "queuepurge", confirm: true},
	"retry":      {command: "jobretry"},
	"cancel":     {command: "jobcancel", confirm: true},
	"retry-all":  {command: "jobretry", confirm: true, bulk: true},
	"cancel-all": {command: "jobcancel", confirm: true, bulk: true},
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
	if data.ID != "" && !a.bulk {
		data.Back = "/job?" + queryString("id", data.ID)
	}
	target := data.Queue
	if op == "retry" || op == "cancel" {
		target = data.ID
	}
	if !a.bulk && strings.TrimSpace(target) == "" {
		http.Error(w, "no queue or job named", http.StatusBadRequest)
		return
	}
	if a.confirm && f.Get("confirm") != "yes" {
		data.Confirm = true
		d.render(w, r, "action", page{Title: "Confirm", Data: data})
		return
	}
	status := http.StatusOK
	if a.bulk {
		data.Message, data.Next, data.Failed = d.bulk(r, u, a.command, data.Filter, f.Get("cursor"))
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

// bulk runs command on every job matching f from cursor on, for at most
// bulkJobs jobs and bulkSlots slots of the id index: a press does a
// bounded amount of work, and says where to go on from.
func (d *Dashboard) bulk(r *http.Request, u *protocol.User, command string, f filter, cursor string) (msg, next string, failed bool) {
	l, err := d.list(f, cursor, bulkJobs, bulkSlots)
	if err != nil {
		return errText(err), "", true
	}
	done, errs := 0, 0
	first := ""
	for _, j := range l.Jobs {
		if _, err := d.run(r, u, command, j.ID); err != nil {
			errs++
			if first == "" {
				first = errText(err)
			}
			continue
		}
		done++
	}
	msg = strconv.Itoa(done) + " of " + strconv.Itoa(len(l.Jobs)) + " matching jobs done"
	if errs > 0 {
		msg += "; " + strconv.Itoa(errs) + " refused, the first with: " + first
		failed = done == 0
	}
	if l.Next != "" {
		msg += ". More jobs may match: press again to go on."
	}
	return msg, l.Next, failed
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
	case "cancel":
		if b, ok := v.(int64); ok && b == 0 {
			return "Job " + target + " had finished already: nothing to cancel."
		}
		return "Job " + target + " cancelled."
	}
	return "Done."
}
