package main

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/jmoiron/sqlx"
)

// variant is one way of doing a case's work; run does it once and returns its rate (work per second).
type variant struct {
	name string
	run  func() (float64, error)
}

// ratio is a row of the table: num/den per repetition, with the target when it has one (0: none).
type ratio struct {
	num, den string
	target   float64
}

// figures holds a case's rates: variant → column → one per repetition.
type figures map[string]map[string][]float64

// runCase runs a case on every column: a fresh database, setup, then reps repetitions of every variant in turn,
// each repetition starting one variant further.
// It prints the table and reports whether every target was met.
//
// ops > 0 is the work one run does: the table is then followed by the CPU time per unit of work of the server
// and of this process (see cpu.go), the measure that still separates variants when the machine is loaded.
func runCase(cs []column, title, unit string, ops int, setup func(c column, db *sqlx.DB) ([]variant, error), ratios []ratio) bool {
	fmt.Fprintf(os.Stderr, "== %s\n", title)
	f, srv, cli := figures{}, figures{}, figures{}
	var order []string
	for _, c := range cs {
		err := withDB(c, func(db *sqlx.DB) error {
			vs, err := setup(c, db)
			if err != nil {
				return err
			}
			for rep := range *reps {
				// Each repetition starts with the next variant (ABC, BCA, CAB, …): what one run leaves behind
				// (autovacuum, a checkpoint, dirty pages) does not always fall on the same variant.
				for k := range vs {
					v := vs[(rep+k)%len(vs)]
					s0, sok := serverCPU(c.profile, c.d)
					c0 := selfCPU()
					r, err := v.run()
					if err != nil {
						return fmt.Errorf("%s, repetition %d: %w", v.name, rep+1, err)
					}
					c1 := selfCPU()
					s1, _ := serverCPU(c.profile, c.d)
					if f[v.name] == nil {
						f[v.name], srv[v.name], cli[v.name] = map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
						order = append(order, v.name)
					}
					f[v.name][c.name] = append(f[v.name][c.name], r)
					if ops > 0 {
						if sok {
							srv[v.name][c.name] = append(srv[v.name][c.name], float64((s1-s0).Microseconds())/float64(ops))
						}
						cli[v.name][c.name] = append(cli[v.name][c.name], float64((c1-c0).Microseconds())/float64(ops))
					}
				}
			}
			return nil
		})
		if err != nil {
			fmt.Printf("\n%s: column %s failed: %v\n", title, c.name, err)
			return false
		}
		fmt.Fprintf(os.Stderr, "   %s done\n", c.name)
	}
	ok := printCase(cs, title, unit, f, order, ratios)
	if ops > 0 {
		printCPU(cs, srv, cli, order)
	}
	return ok
}

// printCPU prints the medians of server and client CPU microseconds per unit of work.
func printCPU(cs []column, srv, cli figures, order []string) {
	fmt.Printf("CPU µs per op, server + client (median [min–max] of the server's)\n")
	for _, v := range order {
		fmt.Printf("%-22s", v)
		for _, c := range cs {
			s, k := srv[v][c.name], cli[v][c.name]
			if len(k) == 0 {
				fmt.Printf(" %-24s", "–")
				continue
			}
			if len(s) == 0 {
				fmt.Printf(" %-24s", fmt.Sprintf("? + %.0f", median(k)))
				continue
			}
			fmt.Printf(" %-24s", fmt.Sprintf("%.0f [%.0f–%.0f] + %.0f", median(s), slices.Min(s), slices.Max(s), median(k)))
		}
		fmt.Println()
	}
}

func printCase(cs []column, title, unit string, f figures, order []string, ratios []ratio) bool {
	fmt.Printf("\n%s (%s; median [min–max] of %d)\n%-22s", title, unit, *reps, "")
	for _, c := range cs {
		fmt.Printf(" %-24s", c.name)
	}
	fmt.Println()
	for _, v := range order {
		fmt.Printf("%-22s", v)
		for _, c := range cs {
			xs := f[v][c.name]
			if len(xs) == 0 {
				fmt.Printf(" %-24s", "–")
				continue
			}
			fmt.Printf(" %-24s", fmt.Sprintf("%.0f [%.0f–%.0f]", median(xs), slices.Min(xs), slices.Max(xs)))
		}
		fmt.Println()
	}
	ok := true
	for _, r := range ratios {
		if f[r.num] == nil || f[r.den] == nil {
			continue
		}
		fmt.Printf("%-22s", r.num+"/"+r.den)
		var verdicts []string
		for _, c := range cs {
			a, b := f[r.num][c.name], f[r.den][c.name]
			if len(a) == 0 || len(b) == 0 {
				fmt.Printf(" %-24s", "–")
				continue
			}
			rs := make([]float64, len(a))
			for i := range a {
				rs[i] = a[i] / b[i]
			}
			m := median(rs)
			fmt.Printf(" %-24s", fmt.Sprintf("%.2f [%.2f–%.2f]", m, slices.Min(rs), slices.Max(rs)))
			if r.target > 0 && m < r.target {
				verdicts = append(verdicts, c.name)
				ok = false
			}
		}
		if r.target > 0 {
			v := "ok"
			if len(verdicts) > 0 {
				v = "MISSED: " + strings.Join(verdicts, ", ")
			}
			fmt.Printf(" target ≥ %.2f: %s", r.target, v)
		}
		fmt.Println()
	}
	return ok
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}
