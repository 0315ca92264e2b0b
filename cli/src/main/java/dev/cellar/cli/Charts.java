package dev.cellar.cli;

import dev.cellar.api.CellarException;
import dev.cellar.text.Comparison;
import dev.cellar.text.MemorySpanProbe;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.style.Styler;
import org.knowm.xchart.style.markers.SeriesMarkers;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** PNG plots with XChart: the comparison's loss curves and the memory-span curves. */
final class Charts {
    private Charts() {
    }

    /** Validation loss against wall-clock seconds, one series per model that has at least one validation. */
    static void lossCurves(Path png, List<Comparison.Entry> entries) {
        XYChart c = new XYChartBuilder().width(900).height(560).title("Validation loss")
                .xAxisTitle("wall-clock time since the model's training started (s)").yAxisTitle("nats per token").build();
        style(c);
        c.getStyler().setLegendPosition(Styler.LegendPosition.InsideNE);
        for (Comparison.Entry e : entries) {
            if (!e.curve().isEmpty()) {
                c.addSeries(e.cell(), e.curve().stream().mapToDouble(Comparison.Point::wallSeconds).toArray(),
                        e.curve().stream().mapToDouble(Comparison.Point::valLoss).toArray());
            }
        }
        if (c.getSeriesMap().isEmpty()) {
            throw new CellarException("no model has a validation point to plot; use a longer text or a larger --val-fraction");
        }
        write(png, List.of(c));
    }

    /** Two panels: the context-cut loss increase against k, and the gradient norm (log scale, relative) against k. */
    static void memorySpan(Path png, MemorySpanProbe.Result r) {
        XYChart cut = new XYChartBuilder().width(900).height(420).title("Loss increase when the model sees only the last k tokens")
                .xAxisTitle("k (tokens of context)").yAxisTitle("nats per token vs. " + r.fullContext() + " tokens").build();
        style(cut);
        cut.getStyler().setYAxisDecimalPattern("0.0##");
        double[] ks = new double[r.ks().length];
        double[] threshold = new double[ks.length];
        for (int i = 0; i < ks.length; i++) {
            ks[i] = r.ks()[i];
            threshold[i] = r.settings().lossThreshold();
        }
        cut.addSeries("loss increase", ks, r.lossIncrease());
        cut.addSeries("threshold " + r.settings().lossThreshold(), ks, threshold).setMarker(SeriesMarkers.NONE);

        XYChart grad = new XYChartBuilder().width(900).height(420).title("Gradient norm |d loss(t) / d embedding(x[t-k])|")
                .xAxisTitle("k (tokens back)").yAxisTitle("relative to the largest").build();
        style(grad);
        grad.getStyler().setYAxisLogarithmic(true);
        List<Double> gx = new ArrayList<>(), gy = new ArrayList<>();
        double[] rel = r.relativeGradNorm();
        for (int k = 1; k <= rel.length; k++) {
            if (rel[k - 1] > 0) { // a log axis cannot show zero
                gx.add((double) k);
                gy.add(rel[k - 1]);
            }
        }
        if (gx.isEmpty()) { // every gradient vanished: nothing to draw on a log axis
            write(png, List.of(cut));
            return;
        }
        grad.addSeries("gradient norm", gx, gy);
        grad.addSeries("threshold " + r.settings().gradThreshold(), List.of(1.0, (double) rel.length),
                List.of(r.settings().gradThreshold(), r.settings().gradThreshold())).setMarker(SeriesMarkers.NONE);
        write(png, List.of(cut, grad));
    }

    private static void style(XYChart c) {
        c.getStyler().setMarkerSize(5);
        c.getStyler().setChartBackgroundColor(java.awt.Color.WHITE);
        c.getStyler().setPlotGridLinesVisible(true);
    }

    /**
     * Draws a small chart in memory, so that AWT, its fonts and ImageIO are set up now. A command that may have to draw
     * after Ctrl-C calls this first: once the JVM is shutting down, AWT cannot start (it registers shutdown hooks).
     */
    static void warmUp() {
        XYChart c = new XYChartBuilder().width(64).height(48).title("warm-up").xAxisTitle("x").yAxisTitle("y").build();
        style(c);
        c.addSeries("s", new double[]{0, 1}, new double[]{1, 0});
        encode(List.of(c), new java.io.ByteArrayOutputStream());
    }

    /** Writes next to {@code png} first and then moves it in place, so a failure never leaves a broken plot. */
    private static void write(Path png, List<XYChart> charts) {
        Path tmp = png.resolveSibling(png.getFileName() + ".tmp");
        try {
            try (OutputStream out = Files.newOutputStream(tmp)) {
                encode(charts, out);
            }
            Files.move(tmp, png, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new CellarException("cannot write " + png + ": " + e.getMessage());
        } finally {
            try {
                Files.deleteIfExists(tmp);
            } catch (IOException ignored) {
                // the plot itself was written or reported; a stray .tmp is harmless
            }
        }
    }

    private static void encode(List<XYChart> charts, OutputStream out) {
        System.setProperty("java.awt.headless", "true");
        try {
            BitmapEncoder.saveBitmap(charts, charts.size(), 1, out, BitmapEncoder.BitmapFormat.PNG);
        } catch (IOException e) {
            throw new CellarException("cannot draw the plot: " + e.getMessage());
        }
    }
}
