package dev.cellar.text;

import dev.cellar.api.CellarException;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Word level, as in the reference experiment: words (letters, digits, apostrophes inside words) and each
 * punctuation mark are tokens, a newline is a token, other whitespace separates. The vocabulary keeps the most
 * frequent tokens up to a cap; id 0 is {@code <unk>} for the rest. Decoding joins with single spaces, without a
 * space before punctuation or around newlines.
 */
public final class WordTokenizer implements Tokenizer {
    public static final String UNK = "<unk>";
    static final Pattern TOKEN = Pattern.compile("[\\p{L}\\p{N}]+(?:'[\\p{L}]+)*|\\n|[^\\s\\p{L}\\p{N}]");
    private final List<String> vocab;
    private final Map<String, Integer> index = new HashMap<>();

    public WordTokenizer(List<String> vocab) {
        if (vocab.isEmpty() || !vocab.get(0).equals(UNK)) {
            throw new CellarException("word vocabulary must start with " + UNK);
        }
        this.vocab = List.copyOf(vocab);
        for (int i = 0; i < vocab.size(); i++) {
            index.putIfAbsent(vocab.get(i), i);
        }
    }

    static List<String> split(String text) {
        List<String> out = new ArrayList<>();
        Matcher m = TOKEN.matcher(text);
        while (m.find()) {
            out.add(m.group());
        }
        return out;
    }

    /** Keeps the {@code maxVocab - 1} most frequent tokens (ties by first appearance) plus {@code <unk>}. */
    public static WordTokenizer fit(String text, int maxVocab) {
        if (maxVocab < 2) {
            throw new CellarException("word vocabulary size " + maxVocab + " must be at least 2");
        }
        Map<String, Integer> counts = new LinkedHashMap<>();
        for (String t : split(text)) {
            counts.merge(t, 1, Integer::sum);
        }
        List<String> byFreq = new ArrayList<>(counts.keySet());
        byFreq.sort((a, b) -> counts.get(b) - counts.get(a));
        List<String> vocab = new ArrayList<>();
        vocab.add(UNK);
        vocab.addAll(byFreq.subList(0, Math.min(byFreq.size(), maxVocab - 1)));
        return new WordTokenizer(vocab);
    }

    @Override
    public String kind() {
        return "word";
    }

    @Override
    public int vocabSize() {
        return vocab.size();
    }

    @Override
    public int[] encode(String text) {
        return split(text).stream().mapToInt(t -> index.getOrDefault(t, 0)).toArray();
    }

    @Override
    public String decode(int[] ids) {
        StringBuilder sb = new StringBuilder();
        for (int id : ids) {
            appendToken(sb, vocab.get(id));
        }
        return sb.toString();
    }

    static void appendToken(StringBuilder sb, String t) {
        boolean word = Character.isLetterOrDigit(t.codePointAt(0)) || t.equals(UNK);
        if (sb.length() > 0 && word && sb.charAt(sb.length() - 1) != '\n') {
            sb.append(' ');
        }
        sb.append(t);
    }

    @Override
    public String token(int id) {
        return vocab.get(id);
    }

    /** Streaming: the text a token adds after {@code previous} was emitted. */
    public String continuation(int previous, int id) {
        StringBuilder sb = new StringBuilder(previous < 0 ? "" : vocab.get(previous));
        int before = sb.length();
        appendToken(sb, vocab.get(id));
        return previous < 0 ? vocab.get(id) : sb.substring(before);
    }

    @Override
    public double charsPerToken(String text, int tokens) {
        return tokens == 0 ? 1 : (double) text.codePointCount(0, text.length()) / tokens;
    }

    @Override
    public Map<String, Object> toMetadata() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("kind", "word");
        m.put("vocab", vocab);
        return m;
    }

    static WordTokenizer fromMetadata(Map<String, Object> m) {
        List<?> v = Tokenizers.list(m, "vocab");
        List<String> words = new ArrayList<>();
        for (Object o : v) {
            if (!(o instanceof String s) || s.isEmpty()) {
                throw new CellarException("word vocabulary entry is not a non-empty string: " + o);
            }
            words.add(s);
        }
        return new WordTokenizer(words);
    }
}
