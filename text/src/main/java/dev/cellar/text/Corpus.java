package dev.cellar.text;

import dev.cellar.api.CellarException;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/** Reads a training text strictly: UTF-8 only, not empty, not binary; and splits token ids for validation. */
public final class Corpus {
    private Corpus() {
    }

    /** The text of {@code path}, or a CellarException naming the problem (and the byte offset of bad UTF-8). */
    public static String read(Path path) {
        if (!Files.exists(path)) {
            throw new CellarException(path + ": file not found");
        }
        if (Files.isDirectory(path)) {
            throw new CellarException(path + ": is a directory; pass a UTF-8 text file");
        }
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(path);
        } catch (IOException e) {
            throw new CellarException(path + ": cannot read (" + e.getMessage() + ")");
        }
        if (bytes.length == 0) {
            throw new CellarException(path + ": file is empty; pass a text with at least a few hundred characters");
        }
        for (int i = 0; i < bytes.length; i++) {
            if (bytes[i] == 0) {
                throw new CellarException(path + ": looks binary (NUL byte at offset " + i + "); pass a UTF-8 text file");
            }
        }
        return decode(path.toString(), bytes);
    }

    static String decode(String name, byte[] bytes) {
        CharsetDecoder dec = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT);
        ByteBuffer in = ByteBuffer.wrap(bytes);
        CharBuffer out = CharBuffer.allocate(bytes.length + 1);
        CoderResult r = dec.decode(in, out, true);
        if (r.isError()) {
            throw new CellarException(name + ": not valid UTF-8 at byte offset " + in.position()
                    + "; convert it first, e.g. iconv -f latin1 -t utf-8");
        }
        r = dec.flush(out);
        if (r.isError()) {
            throw new CellarException(name + ": not valid UTF-8 at byte offset " + in.position());
        }
        out.flip();
        String s = out.toString();
        return s.startsWith("\uFEFF") ? s.substring(1) : s;
    }

    /** The first {@code trainFraction} of the ids for training and the rest for validation, like bench_lm.py. */
    public static int[][] split(int[] ids, double trainFraction) {
        if (!(trainFraction > 0 && trainFraction < 1)) {
            throw new CellarException("train fraction " + trainFraction + " must be between 0 and 1 (exclusive)");
        }
        int n = (int) (trainFraction * ids.length);
        return new int[][]{Arrays.copyOfRange(ids, 0, n), Arrays.copyOfRange(ids, n, ids.length)};
    }
}
