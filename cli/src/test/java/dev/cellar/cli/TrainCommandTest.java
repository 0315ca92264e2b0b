package dev.cellar.cli;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

import static dev.cellar.cli.Cli.assertFailure;
import static dev.cellar.cli.Cli.assertUsage;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code cellar train}: every bad input is one error line with the right exit code, and a saved run is never clobbered. */
class TrainCommandTest {
    @TempDir
    Path dir;
    Path data;
    Path out;

    @BeforeEach
    void corpus() throws IOException {
        data = Cli.write(dir.resolve("corpus.txt"), Cli.corpus(3000));
        out = dir.resolve("run");
    }

    @Test
    void missingDataFile() {
        assertFailure(Cli.train(dir.resolve("nope.txt"), out), "--data", "nope.txt: file not found");
        assertFalse(Files.exists(out));
    }

    @Test
    void dataIsADirectory() {
        assertFailure(Cli.train(dir, out), "--data", "is a directory");
    }

    @Test
    void emptyDataFile() throws IOException {
        Path empty = Files.createFile(dir.resolve("empty.txt"));
        assertFailure(Cli.train(empty, out), "--data", "empty.txt: file is empty");
        assertFalse(Files.exists(out));
    }

    /** Binary input is rejected (a NUL byte is never text), with the offset of the first NUL. */
    @Test
    void binaryDataFileIsRejected() throws IOException {
        byte[] png = {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
        Path img = Files.write(dir.resolve("image.png"), png);
        assertFailure(Cli.train(img, out), "--data", "image.png: looks binary (NUL byte at offset 8)", "UTF-8 text file");
    }

    @Test
    void nonUtf8DataFileNamesTheByteOffset() throws IOException {
        Path latin1 = Files.write(dir.resolve("latin1.txt"), "caf\u00e9 au lait".getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
        assertFailure(Cli.train(latin1, out), "--data", "not valid UTF-8 at byte offset 3", "iconv");
    }

    @Test
    void unknownCellListsTheInstalledOnes() {
        assertUsage(Cli.train(data, out, "--cell", "lstn"), "unknown cell 'lstn'", "lstm", "gru", "transformer", "--plugins");
        assertFalse(Files.exists(out));
    }

    @Test
    void unknownBackendListsTheKnownOnes() {
        assertUsage(Cli.train(data, out, "--backend", "tpu"), "unknown backend 'tpu'", "cpu-reference", "cpu");
    }

    @Test
    void unknownTokenizerListsTheKinds() {
        assertUsage(Cli.train(data, out, "--tokenizer", "sentencepiece"), "--tokenizer sentencepiece", "char, word, bpe");
    }

    static Stream<Arguments> badSizes() {
        return Stream.of(
                Arguments.of(new String[]{"--hidden", "0"}, "--hidden 0 must be positive"),
                Arguments.of(new String[]{"--layers", "-1"}, "--layers -1 must be positive"),
                Arguments.of(new String[]{"--batch", "0"}, "--batch 0 must be positive"),
                Arguments.of(new String[]{"--seq", "0"}, "--seq 0 must be positive"),
                Arguments.of(new String[]{"--epochs", "0"}, "--epochs 0 must be positive"),
                Arguments.of(new String[]{"--lr", "-1"}, "--lr -1.0 must be in (0, 10)"),
                Arguments.of(new String[]{"--lr", "NaN"}, "--lr NaN"),
                Arguments.of(new String[]{"--dropout", "1.5"}, "--dropout 1.5 must be in [0, 1)"),
                Arguments.of(new String[]{"--val-fraction", "0"}, "--val-fraction 0.0 must be between 0 and 1"),
                Arguments.of(new String[]{"--val-fraction", "1"}, "--val-fraction 1.0 must be between 0 and 1"),
                Arguments.of(new String[]{"--clip", "-1"}, "--clip"),
                Arguments.of(new String[]{"--time-budget", "abc"}, "--time-budget abc is not a duration; write it like 90s"),
                Arguments.of(new String[]{"--time-budget", "0"}, "--time-budget 0 is not a duration"),
                Arguments.of(new String[]{"--time-budget", "-5m"}, "--time-budget -5m is not a duration"),
                Arguments.of(new String[]{"--hidden", "abc"}, "Invalid value for option '--hidden': 'abc' is not an int"));
    }

    @ParameterizedTest
    @MethodSource("badSizes")
    void badNumbersAreUsageErrorsNamingTheFlag(String[] flag, String message) {
        assertUsage(Cli.train(data, out, flag), message);
        assertFalse(Files.exists(out));
    }

    @Test
    void corpusTooSmallForOneWindow() throws IOException {
        Path small = Cli.write(dir.resolve("small.txt"), "the cat sat on a mat. ");
        assertFailure(Cli.train(small, out), "--data", "too short for one window of --batch 4 x --seq 8", "smaller --batch or --seq");
        assertFalse(Files.exists(out));
    }

    @Test
    void outThatIsAFileIsRefused() throws IOException {
        Path file = Cli.write(dir.resolve("notes.txt"), "keep me");
        assertUsage(Cli.train(data, file), "--out", "is a file");
        assertEquals("keep me", Files.readString(file));
    }

    @Test
    void trainsATinyModelWithProgressLines() {
        Cli.Result r = Cli.train(data, out);
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("step 1/"), r.err());
        assertTrue(r.err().contains("epoch 1/1 loss "), r.err());
        assertTrue(r.err().contains("tok/s, ETA "), r.err());
        assertTrue(r.out().contains("checkpoint: " + out.resolve("last.safetensors")), r.out());
        assertTrue(Files.exists(out.resolve("last.safetensors")));
        assertTrue(Files.exists(out.resolve("best.safetensors")));
        assertTrue(Files.exists(out.resolve("metrics.jsonl")));
    }

    @Test
    void existingRunIsRefusedAndLeftByteIdenticalWithoutForce() throws IOException {
        assertEquals(0, Cli.train(data, out).code());
        Map<String, byte[]> before = snapshot(out);
        assertUsage(Cli.train(data, out, "--seed", "2"), "--out " + out + " already holds a run", "--force", "--resume");
        Map<String, byte[]> after = snapshot(out);
        assertEquals(before.keySet(), after.keySet());
        before.forEach((name, bytes) -> assertArrayEquals(bytes, after.get(name), name + " changed"));
    }

    @Test
    void forceReplacesTheRun() throws IOException {
        assertEquals(0, Cli.train(data, out).code());
        long steps = Files.readAllLines(out.resolve("metrics.jsonl")).stream().filter(l -> l.contains("\"loss\"")).count();
        byte[] last = Files.readAllBytes(out.resolve("last.safetensors"));
        Cli.Result r = Cli.train(data, out, "--seed", "2", "--force");
        assertEquals(0, r.code(), r.err());
        assertFalse(Arrays.equals(last, Files.readAllBytes(out.resolve("last.safetensors"))), "a new run was written");
        long steps2 = Files.readAllLines(out.resolve("metrics.jsonl")).stream().filter(l -> l.contains("\"loss\"")).count();
        assertEquals(steps, steps2, "metrics.jsonl holds only the new run");
    }

    @Test
    void outWithOtherFilesIsNotARun() throws IOException {
        Files.createDirectories(out);
        Cli.write(out.resolve("README"), "notes");
        assertEquals(0, Cli.train(data, out).code());
        assertEquals("notes", Files.readString(out.resolve("README")));
    }

    @Test
    void resumeWithoutACheckpointIsAnError() throws IOException {
        Files.createDirectories(out);
        Cli.Result r = Cli.run("train", "--data", data.toString(), "--resume", out.toString(), "--backend", "cpu-reference");
        assertFailure(r, "--resume " + out, "no last.safetensors");
    }

    @Test
    void resumeContinuesTheRun() {
        assertEquals(0, Cli.train(data, out, "--time-budget", "0.0001s").code());
        Cli.Result r = Cli.run("train", "--data", data.toString(), "--resume", out.toString(), "--backend", "cpu-reference",
                "--epochs", "1", "--seq", "8", "--batch", "4", "--eval-every", "0");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("epoch 1 of 1"), r.out());
    }

    private static Map<String, byte[]> snapshot(Path d) throws IOException {
        Map<String, byte[]> m = new TreeMap<>();
        try (Stream<Path> s = Files.list(d)) {
            for (Path p : s.toList()) {
                m.put(p.getFileName().toString(), Files.readAllBytes(p));
            }
        }
        return m;
    }
}
