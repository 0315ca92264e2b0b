package dev.cellar.text;

import dev.cellar.api.DType;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** Thousands of damaged checkpoints: each loads or ends in a CheckpointException with a message, nothing else. */
class CheckpointFuzzProperties {
    private static final byte[] VALID = valid();

    private static byte[] valid() {
        try {
            Tokenizer tok = CharTokenizer.fit("abcde fgh\n");
            LanguageModel m = Fixtures.model("lstm", tok, 4, 1);
            Path f = Files.createTempFile("cellar-fuzz", ".safetensors");
            Checkpoints.save(f, m, Map.of("embed.weight.m", new double[m.params().get(0).shape().size()], "step", new double[]{3}),
                    Checkpoints.Progress.start(1));
            byte[] b = Files.readAllBytes(f);
            Files.delete(f);
            return b;
        } catch (java.io.IOException e) {
            throw new IllegalStateException(e);
        }
    }

    private static void mustLoadOrFailCleanly(byte[] file) {
        try {
            Checkpoints.Loaded l = Checkpoints.load("fuzz.safetensors", file, Fixtures.CELLS, Fixtures.REF, DType.F32);
            assertNotNull(l.model());
        } catch (CheckpointException e) {
            assertTrue(e.getMessage() != null && e.getMessage().startsWith("fuzz.safetensors: "), e.getMessage());
            assertTrue(!e.getMessage().contains("\n"), "one line: " + e.getMessage());
        } catch (Throwable t) {
            fail("a damaged checkpoint raised " + t, t);
        }
    }

    @Property(seed = "1", tries = 1500)
    void byteFlips(@ForAll long seed, @ForAll @IntRange(min = 1, max = 8) int flips) {
        byte[] b = VALID.clone();
        SplittableRandom r = new SplittableRandom(seed);
        for (int i = 0; i < flips; i++) {
            // bias towards the header, where structure lives
            int at = r.nextInt(4) == 0 ? r.nextInt(b.length) : r.nextInt(Math.min(b.length, 8 + headerLength()));
            b[at] = (byte) r.nextInt(256);
        }
        mustLoadOrFailCleanly(b);
    }

    @Property(seed = "1", tries = 400)
    void truncations(@ForAll @IntRange(min = 0, max = 100_000) int cut) {
        int n = cut % VALID.length;
        mustLoadOrFailCleanly(java.util.Arrays.copyOf(VALID, n));
    }

    @Property(seed = "1", tries = 300)
    void headerLengthEdits(@ForAll long length) {
        byte[] b = VALID.clone();
        ByteBuffer.wrap(b, 0, 8).order(ByteOrder.LITTLE_ENDIAN).putLong(length);
        mustLoadOrFailCleanly(b);
    }

    @Property(seed = "1", tries = 500)
    void jsonEdits(@ForAll long seed) {
        int n = headerLength();
        String header = new String(VALID, 8, n, java.nio.charset.StandardCharsets.UTF_8);
        SplittableRandom r = new SplittableRandom(seed);
        String[] from = {"\"F32\"", "\"shape\":[", "\"data_offsets\":[", "\"lstm\"", "\"layers\\\":2", "\"hidden\\\":4", "]", "{", ":", ","};
        String[] to = {"\"F16\"", "\"shape\":[-1,", "\"data_offsets\":[99999999,", "\"nope\"", "\"layers\\\":99", "\"hidden\\\":99999", "", "[", ",", ":"};
        int k = r.nextInt(from.length);
        String edited = header.replaceFirst(java.util.regex.Pattern.quote(from[k]), java.util.regex.Matcher.quoteReplacement(to[k]));
        byte[] h = edited.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        byte[] b = new byte[8 + h.length + VALID.length - 8 - n];
        ByteBuffer.wrap(b, 0, 8).order(ByteOrder.LITTLE_ENDIAN).putLong(h.length);
        System.arraycopy(h, 0, b, 8, h.length);
        System.arraycopy(VALID, 8 + n, b, 8 + h.length, VALID.length - 8 - n);
        mustLoadOrFailCleanly(b);
    }

    private static int headerLength() {
        return (int) ByteBuffer.wrap(VALID, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
    }
}
