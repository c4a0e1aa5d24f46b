package main

import (
	"errors"
	"fmt"
	"image/color"
	"io/fs"
	"os"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

var toolColor = map[string]color.Color{
	"claimctl": color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	"etcdctl":  color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
}

var toolLabel = map[string]string{"claimctl": "claimctl run", "etcdctl": "etcdctl lock (v3.7.3)"}

// chart draws four panels into one PNG: the uncontended latency
// distribution, sections per second, handoff gaps under contention, and the
// handoff gap as in-process waiters grow.
func (r *Results) chart(path string) error {
	panels := [][]*plot.Plot{{r.latencyPlot(), r.throughputPlot()}, {r.gapPlot(), r.waitersPlot()}}
	img := vgimg.NewWith(vgimg.UseWH(12*vg.Inch, 9*vg.Inch), vgimg.UseDPI(110))
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	tiles := draw.Tiles{Rows: 2, Cols: 2, PadX: vg.Points(24), PadY: vg.Points(24),
		PadTop: vg.Points(12), PadBottom: vg.Points(12), PadLeft: vg.Points(12), PadRight: vg.Points(12)}
	canvases := plot.Align(panels, tiles, dc)
	for i := range panels {
		for j := range panels[i] {
			if panels[i][j] != nil {
				panels[i][j].Draw(canvases[i][j])
			}
		}
	}
	return writePNG(img, path)
}

// writePNG encodes img as a PNG at path.
func writePNG(img *vgimg.Canvas, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// rttChart draws rttPlot alone into a PNG: a figure of its own, not a
// fifth panel, so that docs can show it next to the cluster's tables. With
// no sweep in the results it writes nothing and removes a chart an earlier
// run left at path, which would otherwise be published as this run's.
func (r *Results) rttChart(path string) error {
	p := r.rttPlot()
	if p == nil {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	img := vgimg.NewWith(vgimg.UseWH(8*vg.Inch, 5.5*vg.Inch), vgimg.UseDPI(110))
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	pad := vg.Points(12)
	p.Draw(draw.Crop(dc, pad, -pad, pad, -pad))
	return writePNG(img, path)
}

// kindDashes and kindGlyphs tell the cluster kinds apart on the RTT chart,
// where colour already tells the tools apart.
var (
	kindDashes = map[string][]vg.Length{"claimctl-server": nil, "etcd": {vg.Points(6), vg.Points(3)}}
	kindGlyphs = map[string]draw.GlyphDrawer{"claimctl-server": draw.CircleGlyph{}, "etcd": draw.PyramidGlyph{}}
)

// rttPlot is the median uncontended latency against RTT, one line per
// tool and cluster kind; nil when no cluster run has a sweep.
func (r *Results) rttPlot() *plot.Plot {
	var runs []*ClusterRun
	for _, c := range r.Cluster {
		if len(c.Sweep) > 0 {
			runs = append(runs, c)
		}
	}
	if len(runs) == 0 {
		return nil
	}
	p := newPlot("Uncontended run on a 3-member TLS cluster: median against RTT", "RTT to every member (ms)", "median fork to exit (ms)")
	var ticks []plot.Tick
	top := 0.0
	for _, c := range runs {
		for _, t := range []string{"claimctl", "etcdctl"} {
			var pts plotter.XYs
			for _, pt := range c.Sweep {
				if st := pt.Tools[t]; st != nil {
					pts = append(pts, plotter.XY{X: pt.RTTms, Y: st.MedianMs})
					top = max(top, st.MedianMs)
				}
			}
			if len(pts) == 0 {
				continue
			}
			line, points, err := plotter.NewLinePoints(pts)
			if err != nil {
				continue
			}
			line.Color = toolColor[t]
			line.Width = vg.Points(2)
			line.Dashes = kindDashes[c.Kind]
			points.Color = toolColor[t]
			points.Radius = vg.Points(3.5)
			if g := kindGlyphs[c.Kind]; g != nil {
				points.Shape = g
			}
			p.Add(line, points)
			label := toolLabel[t]
			if len(runs) > 1 {
				label += ", " + c.Kind + " members"
			}
			p.Legend.Add(label, line, points)
		}
		for _, pt := range c.Sweep {
			if !slices.ContainsFunc(ticks, func(k plot.Tick) bool { return k.Value == pt.RTTms }) {
				ticks = append(ticks, plot.Tick{Value: pt.RTTms, Label: fmt.Sprintf("%g", pt.RTTms)})
			}
		}
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(8)
	p.Legend.YOffs = -vg.Points(4)
	p.X.Min = 0
	p.Y.Min = 0
	if top > 0 {
		// Leave room above the highest point for the legend.
		p.Y.Max = top * 1.35
	}
	return p
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.X.Label.TextStyle.Font.Size = vg.Points(11)
	p.Y.Label.TextStyle.Font.Size = vg.Points(11)
	p.X.Tick.Label.Font.Size = vg.Points(10)
	p.Y.Tick.Label.Font.Size = vg.Points(10)
	p.Legend.TextStyle.Font.Size = vg.Points(10)
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p
}

// latencyPlot is the CDF of uncontended fork-to-exit latency.
func (r *Results) latencyPlot() *plot.Plot {
	if len(r.Uncontended) == 0 {
		return nil
	}
	p := newPlot("Uncontended run: fork to exit (CDF)", "latency (ms)", "fraction of runs")
	for _, t := range []string{"claimctl", "etcdctl"} {
		l := r.Uncontended[t]
		if l == nil || len(l.Wall) == 0 {
			continue
		}
		s := slices.Clone(l.Wall)
		slices.Sort(s)
		pts := make(plotter.XYs, len(s))
		for i, v := range s {
			pts[i] = plotter.XY{X: v, Y: float64(i+1) / float64(len(s))}
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			continue
		}
		line.Color = toolColor[t]
		line.Width = vg.Points(2)
		p.Add(line)
		p.Legend.Add(fmt.Sprintf("%s (median %.1f ms)", toolLabel[t], l.WallSum.Median), line)
	}
	p.Legend.Left = false
	p.Legend.Top = false
	p.Legend.XOffs = -vg.Points(4)
	p.Legend.YOffs = vg.Points(8)
	p.Y.Min, p.Y.Max = 0, 1
	return p
}

// bars adds one bar series per tool over the categories.
func bars(p *plot.Plot, categories []string, values map[string][]float64, order []string) {
	barsLabelled(p, categories, values, order, toolLabel)
}

// barsLabelled is bars with the legend's labels given.
func barsLabelled(p *plot.Plot, categories []string, values map[string][]float64, order []string, labels map[string]string) {
	w := vg.Points(22)
	top := 0.0
	for _, vs := range values {
		for _, v := range vs {
			top = max(top, v)
		}
	}
	for i, t := range order {
		vs := values[t]
		if len(vs) == 0 {
			continue
		}
		b, err := plotter.NewBarChart(plotter.Values(vs), w)
		if err != nil {
			continue
		}
		b.Color = toolColor[t]
		b.LineStyle.Width = 0
		b.Offset = w * vg.Length(float64(i)-float64(len(order)-1)/2)
		p.Add(b)
		p.Legend.Add(labels[t], b)
	}
	p.NominalX(categories...)
	p.Y.Min = 0
	// Leave room above the tallest bar for the legend.
	p.Y.Max = top * 1.3
}

func (r *Results) contentionByProcs() ([]int, map[string]map[int]*Contention) {
	by := map[string]map[int]*Contention{}
	var procs []int
	for _, c := range r.Contention {
		if by[c.Tool] == nil {
			by[c.Tool] = map[int]*Contention{}
		}
		by[c.Tool][c.Procs] = c
		if !slices.Contains(procs, c.Procs) {
			procs = append(procs, c.Procs)
		}
	}
	slices.Sort(procs)
	return procs, by
}

// throughputPlot is sections per second at each process count.
func (r *Results) throughputPlot() *plot.Plot {
	procs, by := r.contentionByProcs()
	if len(procs) == 0 {
		return nil
	}
	p := newPlot("Contention: critical sections per second (5 ms section)", "processes contending", "sections / s")
	var cats []string
	values := map[string][]float64{}
	for _, n := range procs {
		cats = append(cats, fmt.Sprintf("%d processes", n))
		for _, t := range []string{"claimctl", "etcdctl"} {
			if c := by[t][n]; c != nil {
				values[t] = append(values[t], c.PerSecond)
			}
		}
	}
	if n := r.Net; n != nil {
		if c, d := n.byTool(); c != nil && d != nil {
			cats = append(cats, fmt.Sprintf("%d processes, %.0f ms RTT", c.Procs, n.RTTms))
			values["claimctl"] = append(values["claimctl"], c.PerSecond)
			values["etcdctl"] = append(values["etcdctl"], d.PerSecond)
		}
	}
	bars(p, cats, values, []string{"claimctl", "etcdctl"})
	return p
}

// gapPlot is the handoff gap (median and p90) with the most processes
// contending and in the isolated handoff scenario.
func (r *Results) gapPlot() *plot.Plot {
	procs, by := r.contentionByProcs()
	values := map[string][]float64{}
	var cats []string
	if len(procs) > 0 {
		n := procs[len(procs)-1]
		cats = append(cats, fmt.Sprintf("%d procs: median", n), fmt.Sprintf("%d procs: p90", n))
		for _, t := range []string{"claimctl", "etcdctl"} {
			if c := by[t][n]; c != nil {
				values[t] = append(values[t], c.Gap.Median, c.Gap.P90)
			}
		}
	}
	if c, d := r.Handoff["claimctl"], r.Handoff["etcdctl"]; c != nil && d != nil && len(c.Gaps) > 0 && len(d.Gaps) > 0 {
		cats = append(cats, "isolated: median", "isolated: p90")
		values["claimctl"] = append(values["claimctl"], c.Gap.Median, c.Gap.P90)
		values["etcdctl"] = append(values["etcdctl"], d.Gap.Median, d.Gap.P90)
	}
	if n := r.Net; n != nil {
		if c, d := n.byTool(); c != nil && d != nil {
			cats = append(cats, fmt.Sprintf("%.0f ms RTT: median", n.RTTms))
			values["claimctl"] = append(values["claimctl"], c.Gap.Median)
			values["etcdctl"] = append(values["etcdctl"], d.Gap.Median)
		}
	}
	if len(cats) == 0 {
		return nil
	}
	p := newPlot("Handoff gap: next child's start - previous child's end", "", "gap (ms)")
	bars(p, cats, values, []string{"claimctl", "etcdctl"})
	return p
}

// waitersPlot is the median handoff gap as in-process waiters grow.
func (r *Results) waitersPlot() *plot.Plot {
	if len(r.Waiters) == 0 {
		return nil
	}
	p := newPlot("In-process waiters on one claim: handoff gap median", "waiters queued", "gap (ms)")
	var ws []int
	for _, w := range r.Waiters {
		if !slices.Contains(ws, w.Waiters) {
			ws = append(ws, w.Waiters)
		}
	}
	slices.Sort(ws)
	values := map[string][]float64{}
	var cats []string
	for _, n := range ws {
		cats = append(cats, fmt.Sprint(n))
		for _, w := range r.Waiters {
			if w.Waiters == n {
				values[w.Protocol] = append(values[w.Protocol], w.Gap.Median)
			}
		}
	}
	barsLabelled(p, cats, values, []string{"claimctl", "etcdctl"}, map[string]string{
		"claimctl": "pkg/claim (claimctl run's protocol)",
		"etcdctl":  "concurrency.Mutex (etcdctl lock's protocol)",
	})
	return p
}
