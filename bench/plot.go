package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Series is one system's results over a sweep of client counts: one line
// on each of the plot's two charts.
type Series struct {
	Name    string
	Results []Result
}

// CheckPlotFile says whether Plot can write file: its name must end in
// .png or .svg. Callers check before a run, not after it.
func CheckPlotFile(file string) error {
	switch strings.ToLower(filepath.Ext(file)) {
	case ".png", ".svg":
		return nil
	}
	return fmt.Errorf("plot file %q: want a name ending in .png or .svg", file)
}

// Plot draws throughput (ops/s) and p99 latency against the number of
// clients, one chart above the other, one line per series, and writes
// the picture to file (PNG or SVG, by its extension).
func Plot(file, title string, series []Series) error {
	if err := CheckPlotFile(file); err != nil {
		return err
	}
	ops, p99 := plot.New(), plot.New()
	ops.Title.Text = title
	ops.Y.Label.Text = "ops/s"
	p99.Y.Label.Text = "p99 latency (ms)"
	for _, p := range []*plot.Plot{ops, p99} {
		p.X.Label.Text = "closed-loop clients"
		// Client counts grow by powers; a log axis spaces them evenly.
		p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
		p.Add(plotter.NewGrid())
		p.Legend.Top, p.Legend.Left = true, true
	}
	var opsLines, p99Lines []any
	for _, s := range series {
		var o, l plotter.XYs
		for _, r := range s.Results {
			o = append(o, plotter.XY{X: float64(r.Clients), Y: r.OpsPerSec})
			l = append(l, plotter.XY{X: float64(r.Clients), Y: r.P99ms})
		}
		opsLines = append(opsLines, s.Name, o)
		p99Lines = append(p99Lines, s.Name, l)
	}
	if err := plotutil.AddLinePoints(ops, opsLines...); err != nil {
		return err
	}
	if err := plotutil.AddLinePoints(p99, p99Lines...); err != nil {
		return err
	}

	w, h := 18*vg.Centimeter, 20*vg.Centimeter
	var canvas vg.CanvasWriterTo
	if strings.EqualFold(filepath.Ext(file), ".svg") {
		canvas = vgsvg.New(w, h)
	} else {
		canvas = vgimg.PngCanvas{Canvas: vgimg.New(w, h)}
	}
	dc := draw.New(canvas)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Centimeter / 2, PadBottom: vg.Centimeter / 2,
		PadLeft: vg.Centimeter / 2, PadRight: vg.Centimeter / 2, PadY: vg.Centimeter}
	cells := plot.Align([][]*plot.Plot{{ops}, {p99}}, tiles, dc)
	ops.Draw(cells[0][0])
	p99.Draw(cells[1][0])

	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := canvas.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("plot %s: %w", file, err)
	}
	return f.Close()
}
