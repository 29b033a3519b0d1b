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

// runCase runs a case on every column: a fresh database, setup, then reps repetitions of every variant in turn.
// It prints the table and reports whether every target was met.
func runCase(cs []column, title, unit string, setup func(c column, db *sqlx.DB) ([]variant, error), ratios []ratio) bool {
	fmt.Fprintf(os.Stderr, "== %s\n", title)
	f := figures{}
	var order []string
	for _, c := range cs {
		err := withDB(c, func(db *sqlx.DB) error {
			vs, err := setup(c, db)
			if err != nil {
				return err
			}
			for rep := range *reps {
				for _, v := range vs {
					r, err := v.run()
					if err != nil {
						return fmt.Errorf("%s, repetition %d: %w", v.name, rep+1, err)
					}
					if f[v.name] == nil {
						f[v.name] = map[string][]float64{}
						order = append(order, v.name)
					}
					f[v.name][c.name] = append(f[v.name][c.name], r)
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
	return printCase(cs, title, unit, f, order, ratios)
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
