package dev.cellar.text;

import dev.cellar.api.CellarException;

import java.util.List;
import java.util.Map;

/** Builds tokenizers by kind, from a training text or from checkpoint metadata. */
public final class Tokenizers {
    public static final List<String> KINDS = List.of("char", "word", "bpe");

    private Tokenizers() {
    }

    /** {@code vocabSize} caps word vocabularies and sets the BPE vocabulary; ignored for char. */
    public static Tokenizer fit(String kind, String text, int vocabSize) {
        return switch (kind) {
            case "char" -> CharTokenizer.fit(text);
            case "word" -> WordTokenizer.fit(text, vocabSize);
            case "bpe" -> BpeTokenizer.fit(text, vocabSize);
            default -> throw new CellarException("unknown tokenizer '" + kind + "'; choose one of " + String.join(", ", KINDS));
        };
    }

    public static Tokenizer fromMetadata(Map<String, Object> m) {
        Object kind = m.get("kind");
        if ("char".equals(kind)) {
            return CharTokenizer.fromMetadata(m);
        }
        if ("word".equals(kind)) {
            return WordTokenizer.fromMetadata(m);
        }
        if ("bpe".equals(kind)) {
            return BpeTokenizer.fromMetadata(m);
        }
        throw new CellarException("unknown tokenizer kind " + kind + " in checkpoint; known: " + String.join(", ", KINDS));
    }

    static List<?> list(Map<String, Object> m, String key) {
        if (m.get(key) instanceof List<?> l) {
            return l;
        }
        throw new CellarException("tokenizer metadata has no list '" + key + "'");
    }
}
