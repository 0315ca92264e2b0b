package dev.cellar.text;

import dev.cellar.api.CellarException;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/** Unicode code points; the vocabulary is the sorted set of code points of the training text (like char-rnn). */
public final class CharTokenizer implements Tokenizer {
    private final int[] codePoints;
    private final Map<Integer, Integer> index = new java.util.HashMap<>();

    public CharTokenizer(int[] codePoints) {
        this.codePoints = codePoints.clone();
        for (int i = 0; i < codePoints.length; i++) {
            if (index.put(codePoints[i], i) != null) {
                throw new CellarException("char vocabulary repeats code point U+" + String.format("%04X", codePoints[i]));
            }
        }
    }

    public static CharTokenizer fit(String text) {
        TreeSet<Integer> set = new TreeSet<>();
        text.codePoints().forEach(set::add);
        return new CharTokenizer(set.stream().mapToInt(Integer::intValue).toArray());
    }

    @Override
    public String kind() {
        return "char";
    }

    @Override
    public int vocabSize() {
        return codePoints.length;
    }

    @Override
    public int[] encode(String text) {
        int[] cps = text.codePoints().toArray();
        int[] ids = new int[cps.length];
        for (int i = 0; i < cps.length; i++) {
            Integer id = index.get(cps[i]);
            if (id == null) {
                throw new CellarException("character " + describe(cps[i]) + " at position " + i
                        + " is not in the model's vocabulary of " + codePoints.length + " symbols; remove it from the text");
            }
            ids[i] = id;
        }
        return ids;
    }

    static String describe(int cp) {
        String s = Character.isISOControl(cp) || Character.isWhitespace(cp) ? "" : "'" + new String(Character.toChars(cp)) + "' ";
        return s + String.format("(U+%04X)", cp);
    }

    @Override
    public String decode(int[] ids) {
        StringBuilder sb = new StringBuilder();
        for (int id : ids) {
            sb.appendCodePoint(codePoints[id]);
        }
        return sb.toString();
    }

    @Override
    public String token(int id) {
        return new String(Character.toChars(codePoints[id]));
    }

    @Override
    public Map<String, Object> toMetadata() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("kind", "char");
        m.put("codePoints", Arrays.stream(codePoints).boxed().toList());
        return m;
    }

    static CharTokenizer fromMetadata(Map<String, Object> m) {
        List<?> cps = Tokenizers.list(m, "codePoints");
        int[] a = new int[cps.size()];
        for (int i = 0; i < a.length; i++) {
            if (!(cps.get(i) instanceof Number n) || n.intValue() < 0 || n.intValue() > Character.MAX_CODE_POINT) {
                throw new CellarException("char vocabulary entry " + i + " is not a code point: " + cps.get(i));
            }
            a[i] = n.intValue();
        }
        return new CharTokenizer(a);
    }
}
