package dev.cellar.text;

import dev.cellar.api.CellarException;

import java.util.Map;

/** The shape of a language model: which cell, how many layers, how wide, with which cell options and dropout. */
public record ModelConfig(String cell, int layers, int hidden, Map<String, String> cellOptions, double dropout) {
    public ModelConfig {
        if (cell == null || cell.isBlank()) {
            throw new CellarException("no cell given; pass --cell (e.g. lstm)");
        }
        if (layers <= 0 || layers > 64) {
            throw new CellarException("layers " + layers + " must be between 1 and 64");
        }
        if (hidden <= 0 || hidden > 16384) {
            throw new CellarException("hidden " + hidden + " must be between 1 and 16384");
        }
        if (!(dropout >= 0 && dropout < 1)) {
            throw new CellarException("dropout " + dropout + " must be in [0, 1)");
        }
        cellOptions = Map.copyOf(cellOptions);
    }
}
