package dev.cellar.cli;

import dev.cellar.api.CellarException;
import dev.cellar.text.Comparison;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.style.Styler;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** PNG plots with XChart: the comparison's loss curves. */
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

    private static void style(XYChart c) {
        c.getStyler().setMarkerSize(5);
        c.getStyler().setChartBackgroundColor(java.awt.Color.WHITE);
        c.getStyler().setPlotGridLinesVisible(true);
    }

    private static void write(Path png, List<XYChart> charts) {
        System.setProperty("java.awt.headless", "true");
        try (OutputStream out = Files.newOutputStream(png)) {
            BitmapEncoder.saveBitmap(charts, charts.size(), 1, out, BitmapEncoder.BitmapFormat.PNG);
        } catch (IOException e) {
            throw new CellarException("cannot write " + png + ": " + e.getMessage());
        }
    }
}
