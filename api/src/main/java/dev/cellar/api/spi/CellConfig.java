package dev.cellar.api.spi;

import dev.cellar.api.CellarException;

import java.util.Map;

/**
 * How one layer of a cell is built: input and hidden sizes, its place in the stack ({@code layerIndex} of
 * {@code layers}, so a transformer adds positions only at the bottom and a final norm only at the top) and options
 * keyed by hyper-parameter name.
 */
public record CellConfig(int inputSize, int hiddenSize, int layerIndex, int layers, Map<String, String> options) {
    public CellConfig {
        if (inputSize <= 0 || hiddenSize <= 0) {
            throw new CellarException("cell sizes must be positive: input " + inputSize + ", hidden " + hiddenSize);
        }
        if (layerIndex < 0 || layerIndex >= layers) {
            throw new CellarException("layer index " + layerIndex + " outside 0.." + (layers - 1));
        }
        options = Map.copyOf(options);
    }

    public static CellConfig of(int inputSize, int hiddenSize) {
        return new CellConfig(inputSize, hiddenSize, 0, 1, Map.of());
    }

    public String option(String name, String fallback) {
        return options.getOrDefault(name, fallback);
    }

    public int intOption(String name, int fallback) {
        String v = options.get(name);
        if (v == null) {
            return fallback;
        }
        try {
            return Integer.parseInt(v.trim());
        } catch (NumberFormatException e) {
            throw new CellarException("cell option " + name + "=" + v + " is not a whole number");
        }
    }

    public double doubleOption(String name, double fallback) {
        String v = options.get(name);
        if (v == null) {
            return fallback;
        }
        try {
            return Double.parseDouble(v.trim());
        } catch (NumberFormatException e) {
            throw new CellarException("cell option " + name + "=" + v + " is not a number");
        }
    }

    public boolean boolOption(String name, boolean fallback) {
        String v = options.get(name);
        if (v == null) {
            return fallback;
        }
        return switch (v.trim().toLowerCase()) {
            case "true", "yes", "1", "on" -> true;
            case "false", "no", "0", "off" -> false;
            default -> throw new CellarException("cell option " + name + "=" + v + " is not true or false");
        };
    }
}
