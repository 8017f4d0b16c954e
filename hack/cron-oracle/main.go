// Command cron-oracle answers cron questions with github.com/robfig/cron/v3, the parser upstream KubeRay's
// RayCronJob controller uses, so that api/v1/_cron.py can be compared with it (make cron-cases).
//
// Input on stdin, one JSON object per line: {"spec": "...", "after": <unix seconds>, "count": N}.
// Output, one line per input: {"spec", "after", "error"} or {"spec", "after", "next": [N unix seconds]},
// where a schedule with no further activation contributes null. time.Local is $TZ.
package main

import (
	"bufio"
	"encoding/json"
	"os"
	"time"

	"github.com/robfig/cron/v3"
)

type question struct {
	Spec  string `json:"spec"`
	After int64  `json:"after"`
	Count int    `json:"count"`
}

type answer struct {
	Spec  string   `json:"spec"`
	After int64    `json:"after"`
	Error string   `json:"error,omitempty"`
	Next  []*int64 `json:"next,omitempty"`
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var q question
		if err := json.Unmarshal(in.Bytes(), &q); err != nil {
			panic(err)
		}
		a := answer{Spec: q.Spec, After: q.After}
		schedule, err := cron.ParseStandard(q.Spec)
		if err != nil {
			a.Error = err.Error()
		} else {
			t := time.Unix(q.After, 0)
			for i := 0; i < q.Count; i++ {
				t = schedule.Next(t)
				if t.IsZero() {
					a.Next = append(a.Next, nil)
					break
				}
				u := t.Unix()
				a.Next = append(a.Next, &u)
			}
		}
		if err := out.Encode(a); err != nil {
			panic(err)
		}
	}
	if err := in.Err(); err != nil {
		panic(err)
	}
}
