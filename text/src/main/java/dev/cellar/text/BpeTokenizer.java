package dev.cellar.text;

import dev.cellar.api.CellarException;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Byte-level BPE (GPT-2 style): text is pre-split into words with their leading space, each word starts as UTF-8
 * bytes (ids 0..255), and training repeatedly merges the most frequent adjacent pair (ties: smallest ids) into a new
 * id until the vocabulary size is reached. Any text encodes; nothing is unknown.
 */
public final class BpeTokenizer implements Tokenizer {
    static final Pattern WORDS = Pattern.compile(" ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+");
    private final int[][] merges; // merges[i] = {a, b}, producing id 256 + i
    private final Map<Long, Integer> rank = new HashMap<>();
    private final byte[][] bytes;
    private final Map<String, int[]> cache = new HashMap<>();

    public BpeTokenizer(int[][] merges) {
        this.merges = merges.clone();
        bytes = new byte[256 + merges.length][];
        for (int i = 0; i < 256; i++) {
            bytes[i] = new byte[]{(byte) i};
        }
        for (int i = 0; i < merges.length; i++) {
            int a = merges[i][0], b = merges[i][1];
            if (a < 0 || b < 0 || a >= 256 + i || b >= 256 + i) {
                throw new CellarException("bpe merge " + i + " refers to unknown ids " + a + ", " + b);
            }
            rank.put(key(a, b), i);
            byte[] ab = new byte[bytes[a].length + bytes[b].length];
            System.arraycopy(bytes[a], 0, ab, 0, bytes[a].length);
            System.arraycopy(bytes[b], 0, ab, bytes[a].length, bytes[b].length);
            bytes[256 + i] = ab;
        }
    }

    private static long key(int a, int b) {
        return ((long) a << 32) | (b & 0xffffffffL);
    }

    static List<String> words(String text) {
        List<String> out = new ArrayList<>();
        Matcher m = WORDS.matcher(text);
        while (m.find()) {
            out.add(m.group());
        }
        return out;
    }

    public static BpeTokenizer fit(String text, int vocabSize) {
        if (vocabSize < 256 || vocabSize > 65536) {
            throw new CellarException("bpe vocabulary size " + vocabSize + " must be between 256 and 65536");
        }
        Map<String, Integer> counts = new HashMap<>();
        for (String w : words(text)) {
            counts.merge(w, 1, Integer::sum);
        }
        List<int[]> seqs = new ArrayList<>();
        List<Integer> freq = new ArrayList<>();
        counts.entrySet().stream().sorted(Map.Entry.comparingByKey()).forEach(e -> {
            byte[] b = e.getKey().getBytes(StandardCharsets.UTF_8);
            int[] s = new int[b.length];
            for (int i = 0; i < b.length; i++) {
                s[i] = b[i] & 0xff;
            }
            seqs.add(s);
            freq.add(e.getValue());
        });
        List<int[]> merges = new ArrayList<>();
        for (int next = 256; next < vocabSize; next++) {
            Map<Long, Integer> pairs = new HashMap<>();
            for (int w = 0; w < seqs.size(); w++) {
                int[] s = seqs.get(w);
                for (int i = 0; i + 1 < s.length; i++) {
                    pairs.merge(key(s[i], s[i + 1]), freq.get(w), Integer::sum);
                }
            }
            long best = -1;
            int bestCount = 1;
            for (Map.Entry<Long, Integer> e : pairs.entrySet()) {
                if (e.getValue() > bestCount || (e.getValue() == bestCount && best >= 0 && e.getKey() < best)) {
                    best = e.getKey();
                    bestCount = e.getValue();
                }
            }
            if (best < 0) {
                break; // no pair occurs twice
            }
            int a = (int) (best >>> 32), b = (int) best;
            merges.add(new int[]{a, b});
            for (int w = 0; w < seqs.size(); w++) {
                seqs.set(w, merge(seqs.get(w), a, b, next));
            }
        }
        return new BpeTokenizer(merges.toArray(new int[0][]));
    }

    private static int[] merge(int[] s, int a, int b, int id) {
        int n = 0;
        int[] out = new int[s.length];
        for (int i = 0; i < s.length; i++) {
            if (i + 1 < s.length && s[i] == a && s[i + 1] == b) {
                out[n++] = id;
                i++;
            } else {
                out[n++] = s[i];
            }
        }
        return n == s.length ? out : java.util.Arrays.copyOf(out, n);
    }

    private int[] encodeWord(String w) {
        byte[] b = w.getBytes(StandardCharsets.UTF_8);
        int[] s = new int[b.length];
        for (int i = 0; i < b.length; i++) {
            s[i] = b[i] & 0xff;
        }
        while (s.length > 1) {
            int bestRank = Integer.MAX_VALUE;
            for (int i = 0; i + 1 < s.length; i++) {
                Integer r = rank.get(key(s[i], s[i + 1]));
                if (r != null && r < bestRank) {
                    bestRank = r;
                }
            }
            if (bestRank == Integer.MAX_VALUE) {
                break;
            }
            s = merge(s, merges[bestRank][0], merges[bestRank][1], 256 + bestRank);
        }
        return s;
    }

    @Override
    public String kind() {
        return "bpe";
    }

    @Override
    public int vocabSize() {
        return bytes.length;
    }

    @Override
    public int[] encode(String text) {
        List<Integer> ids = new ArrayList<>();
        for (String w : words(text)) {
            for (int id : cache.computeIfAbsent(w, this::encodeWord)) {
                ids.add(id);
            }
        }
        return ids.stream().mapToInt(Integer::intValue).toArray();
    }

    @Override
    public String decode(int[] ids) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (int id : ids) {
            out.writeBytes(bytes[id]);
        }
        return out.toString(StandardCharsets.UTF_8);
    }

    @Override
    public String token(int id) {
        return new String(bytes[id], StandardCharsets.UTF_8);
    }

    @Override
    public Map<String, Object> toMetadata() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("kind", "bpe");
        List<List<Integer>> ms = new ArrayList<>();
        for (int[] p : merges) {
            ms.add(List.of(p[0], p[1]));
        }
        m.put("merges", ms);
        return m;
    }

    static BpeTokenizer fromMetadata(Map<String, Object> m) {
        List<?> l = Tokenizers.list(m, "merges");
        int[][] ms = new int[l.size()][];
        for (int i = 0; i < ms.length; i++) {
            if (!(l.get(i) instanceof List<?> p) || p.size() != 2 || !(p.get(0) instanceof Number a) || !(p.get(1) instanceof Number b)) {
                throw new CellarException("bpe merge " + i + " is not a pair of ids: " + l.get(i));
            }
            ms[i] = new int[]{a.intValue(), b.intValue()};
        }
        return new BpeTokenizer(ms);
    }
}
