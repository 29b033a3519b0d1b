package console

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText writes a trace for a terminal, as `txbox trace` prints it: a header naming the key and the
// sources, one line per event (UTC time, time since the first event, where, what, key, topic or consumer,
// details; "!" marks what needs attention), the events that need attention again, and the sources that could
// not be read. Every string from a database or the broker goes through Printable, so no escape sequence
// reaches the terminal.
func WriteText(out io.Writer, tr *Trace) error {
	w := &stickyWriter{w: out}
	p := Printable
	scope := "and the keys under " + p(tr.Key) + "/"
	if tr.Exact {
		scope = "only"
	}
	var srcs []string
	for _, s := range tr.Sources {
		srcs = append(srcs, p(s.Name))
	}
	fmt.Fprintf(w, "trace %s (%s) in %s, read %s\n\n", p(tr.Key), scope, strings.Join(srcs, ", "), tr.At.Format(timeLayout))
	if len(tr.Events) == 0 {
		fmt.Fprintln(w, "nothing found: published rows are kept only when the relay runs with a retention, and inbox keys "+
			"are purged after theirs")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "WHEN (UTC)\tSINCE\tWHERE\tEVENT\tKEY\tTOPIC / CONSUMER\tDETAILS")
		first := tr.Events[0].At
		for _, e := range tr.Events {
			who := e.Topic
			if e.Consumer != "" {
				who = e.Consumer
			}
			detail := e.Detail
			if e.Error != "" {
				detail += ": " + shorten(e.Error, 200)
			}
			mark := ""
			if e.Attention {
				mark = " !"
			}
			fmt.Fprintf(tw, "%s\t+%s\t%s\t%s%s\t%s\t%s\t%s\n", e.At.Format("2006-01-02 15:04:05.000000"),
				e.At.Sub(first).Round(time.Microsecond), p(e.Source), e.Kind, mark, p(e.Key), p(who), p(detail))
		}
		_ = tw.Flush() // its error is w's

	}
	if att := tr.Attention(); len(att) > 0 {
		fmt.Fprintln(w, "\nneeds attention:")
		for _, e := range att {
			fmt.Fprintf(w, "  %s %s in %s: %s", e.Kind, p(e.Key), p(e.Source), p(e.Detail))
			if e.Error != "" {
				fmt.Fprintf(w, " (%s)", p(shorten(e.Error, 300)))
			}
			fmt.Fprintln(w)
		}
	}
	for _, s := range tr.Sources {
		switch {
		case s.Error != "":
			fmt.Fprintf(w, "\n%s %s could not be read: %s\n", s.Kind, p(s.Name), p(s.Error))
		case s.Truncated:
			fmt.Fprintf(w, "\n%s %s holds more rows than the trace limit: some are not shown\n", s.Kind, p(s.Name))
		}
	}
	return w.err
}

// stickyWriter keeps the first write error and writes nothing after it.
type stickyWriter struct {
	w   io.Writer
	err error
}

func (s *stickyWriter) Write(b []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.w.Write(b)
	s.err = err
	return n, err
}

// shorten puts an error text on one line of at most n bytes (cut on a character boundary).
func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "..."
}
