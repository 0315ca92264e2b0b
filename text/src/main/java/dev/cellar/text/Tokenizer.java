package dev.cellar.text;

import java.util.Map;

/** Text to token ids and back. The vocabulary travels inside checkpoints through {@link #toMetadata()}. */
public interface Tokenizer {
    /** {@code char}, {@code word} or {@code bpe}. */
    String kind();

    int vocabSize();

    /** Ids of {@code text}; a symbol outside the vocabulary is an error for {@code char}, {@code <unk>} for word. */
    int[] encode(String text);

    String decode(int[] ids);

    /** The text of one token (for streaming output). */
    String token(int id);

    /** JSON-able description from which {@link Tokenizers#fromMetadata} rebuilds this tokenizer. */
    Map<String, Object> toMetadata();

    /** Characters of text per token, for bits-per-character from per-token loss. */
    default double charsPerToken(String text, int tokens) {
        return tokens == 0 ? 1 : (double) text.codePointCount(0, text.length()) / tokens;
    }
}
