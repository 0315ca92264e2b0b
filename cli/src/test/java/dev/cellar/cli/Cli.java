package dev.cellar.cli;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Runs the CLI in-process with captured stdout and stderr, and the assertions the error contract needs. */
final class Cli {
    /** Flags for a model small enough to train in well under a second on cpu-reference. */
    static final List<String> TINY = List.of("--cell", "lstm", "--hidden", "8", "--layers", "1", "--seq", "8", "--batch", "4",
            "--epochs", "1", "--eval-every", "0", "--backend", "cpu-reference", "--seed", "1");

    record Result(int code, String out, String err) {
        List<String> errLines() {
            return err.lines().toList();
        }
    }

    private Cli() {
    }

    static Result run(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code;
        try (PrintStream o = new PrintStream(out, true, StandardCharsets.UTF_8);
             PrintStream e = new PrintStream(err, true, StandardCharsets.UTF_8)) {
            code = Main.run(args, o, e);
        }
        return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    /** {@code train --data data --out out} with the tiny model flags, each replaced by {@code extra}'s value if it has one. */
    static Result train(Path data, Path out, String... extra) {
        List<String> a = new java.util.ArrayList<>(List.of("train", "--data", data.toString(), "--out", out.toString()));
        List<String> more = List.of(extra);
        for (int i = 0; i < TINY.size(); i += 2) {
            if (!more.contains(TINY.get(i))) {
                a.addAll(TINY.subList(i, i + 2));
            }
        }
        a.addAll(more);
        return run(a.toArray(String[]::new));
    }

    /** Deterministic text of about {@code chars} characters over a-z, space, comma and period. */
    static String corpus(int chars) {
        String[] words = {"the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "quick", "brown", "fox", "jumps",
                "over", "lazy", "bird", "sings", "in", "tree", "while", "wind", "blows", "soft", "light", "rain", "falls", "slow",
                "vexed", "zebra", "glad", "hymn"};
        SplittableRandom r = new SplittableRandom(42);
        StringBuilder sb = new StringBuilder();
        while (sb.length() < chars) {
            sb.append(words[r.nextInt(words.length)]);
            int p = r.nextInt(12);
            sb.append(p == 0 ? ". " : p == 1 ? ", " : " ");
        }
        return sb.toString();
    }

    static Path write(Path file, String text) throws IOException {
        return Files.writeString(file, text, StandardCharsets.UTF_8);
    }

    /** Exit {@code code} with exactly one stderr line {@code error: ...} containing every fragment, and no stack trace. */
    static void assertError(Result r, int code, String... fragments) {
        List<String> lines = r.errLines();
        assertEquals(1, lines.size(), () -> "expected one stderr line, got:\n" + r.err());
        String line = lines.get(0);
        assertTrue(line.startsWith("error: "), line);
        for (String f : fragments) {
            assertTrue(line.contains(f), () -> "'" + f + "' not in: " + line);
        }
        assertFalse(r.err().contains("\tat "), r.err());
        assertFalse(line.contains("this is a bug"), line);
        assertEquals(code, r.code(), () -> "exit code for: " + line);
    }

    static void assertUsage(Result r, String... fragments) {
        assertError(r, 2, fragments);
    }

    static void assertFailure(Result r, String... fragments) {
        assertError(r, 1, fragments);
    }
}
