package dev.cellar.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static dev.cellar.cli.Cli.assertFailure;
import static dev.cellar.cli.Cli.assertUsage;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The round trip train -> eval -> generate on one tiny model, and how eval and generate answer bad input. */
class ModelCommandsTest {
    @TempDir
    static Path dir;
    static Path data;
    static Path run;

    @BeforeAll
    static void trainTinyModel() throws IOException {
        data = Cli.write(dir.resolve("corpus.txt"), Cli.corpus(3000));
        run = dir.resolve("run");
        Cli.Result r = Cli.train(data, run);
        assertEquals(0, r.code(), r.err());
    }

    static Cli.Result generate(String... extra) {
        List<String> a = new ArrayList<>(List.of("generate", "--model", run.toString(), "--backend", "cpu-reference"));
        a.addAll(List.of(extra));
        return Cli.run(a.toArray(String[]::new));
    }

    static Cli.Result eval(Path file, String... extra) {
        List<String> a = new ArrayList<>(List.of("eval", "--model", run.toString(), "--data", file.toString(), "--backend",
                "cpu-reference", "--batch", "4", "--seq", "8"));
        a.addAll(List.of(extra));
        return Cli.run(a.toArray(String[]::new));
    }

    @Test
    void evalPrintsLossBitsPerCharAndPerplexity() {
        Cli.Result r = eval(data);
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().matches("(?s).*: \\d+\\.\\d+ nats/token, \\d+\\.\\d+ bits/char, perplexity \\d+\\.\\d+ .*"), r.out());
    }

    @Test
    void evalJsonIsOneObject() throws IOException {
        Cli.Result r = eval(data, "--json");
        assertEquals(0, r.code(), r.err());
        assertEquals(1, r.out().lines().count(), r.out());
        JsonNode o = new ObjectMapper().readTree(r.out());
        assertTrue(o.isObject());
        for (String k : List.of("nats_per_token", "bits_per_char", "perplexity", "tokens")) {
            assertTrue(o.get(k).isNumber(), k + " in " + o);
        }
        double nats = o.get("nats_per_token").asDouble();
        assertEquals(Math.exp(nats), o.get("perplexity").asDouble(), 1e-9 * Math.exp(nats));
        assertTrue(nats > 0 && nats < Math.log(30), "a trained model beats uniform: " + nats);
    }

    @Test
    void generateIsSeededAndContinuesThePrompt() {
        Cli.Result a = generate("--prompt", "the cat ", "--seed", "1", "--length", "20");
        Cli.Result b = generate("--prompt", "the cat ", "--seed", "1", "--length", "20");
        assertEquals(0, a.code(), a.err());
        assertEquals(a.out(), b.out());
        assertTrue(a.out().startsWith("the cat "), a.out());
        assertEquals("the cat ".length() + 20 + "\n".length(), a.out().length(), a.out()); // char model, ASCII vocabulary
        Cli.Result beam = generate("--prompt", "the ", "--beam", "3", "--length", "10");
        assertEquals(0, beam.code(), beam.err());
        assertTrue(beam.out().startsWith("the "), beam.out());
    }

    @Test
    void promptOutsideTheVocabularyNamesTheCharacter() {
        Cli.Result r = generate("--prompt", "the Zebra", "--seed", "1");
        assertUsage(r, "--prompt", "'Z' (U+005A) at position 4", "not in the model's vocabulary");
        assertEquals("", r.out(), "nothing printed before the error");
    }

    static Stream<Arguments> badGenerateFlags() {
        return Stream.of(
                Arguments.of(new String[]{"--prompt", ""}, "--prompt is empty"),
                Arguments.of(new String[]{"--prompt", "the", "--length", "0"}, "--length 0 must be between 1 and 1000000"),
                Arguments.of(new String[]{"--prompt", "the", "--length", "-3"}, "--length -3 must be between 1"),
                Arguments.of(new String[]{"--prompt", "the", "--temperature", "-0.5"}, "--temperature -0.5 must be between 0 and 100"),
                Arguments.of(new String[]{"--prompt", "the", "--top-p", "1.5"}, "--top-p 1.5 must be in (0, 1]"),
                Arguments.of(new String[]{"--prompt", "the", "--top-p", "0"}, "--top-p 0.0 must be in (0, 1]"),
                Arguments.of(new String[]{"--prompt", "the", "--top-k", "-1"}, "--top-k -1 must not be negative"),
                Arguments.of(new String[]{"--prompt", "the", "--beam", "-1"}, "--beam -1 must be between 0 and 64"),
                Arguments.of(new String[]{"--prompt", "the", "--beam", "65"}, "--beam 65 must be between 0 and 64"),
                Arguments.of(new String[]{"--length", "5"}, "Missing required option: '--prompt"));
    }

    @ParameterizedTest
    @MethodSource("badGenerateFlags")
    void badGenerateFlagsAreUsageErrors(String[] flags, String message) {
        Cli.Result r = generate(flags);
        assertUsage(r, message);
        assertEquals("", r.out());
    }

    @Test
    void modelPathThatDoesNotExist() {
        Path nope = dir.resolve("nope");
        assertFailure(Cli.run("generate", "--model", nope.toString(), "--prompt", "the"), "--model " + nope + ": file not found");
    }

    @Test
    void modelDirectoryWithoutCheckpoints() throws IOException {
        Path empty = Files.createDirectories(dir.resolve("empty-run"));
        assertFailure(Cli.run("generate", "--model", empty.toString(), "--prompt", "the"),
                "--model " + empty + ": no best.safetensors or last.safetensors");
    }

    @Test
    void truncatedCheckpoint() throws IOException {
        byte[] whole = Files.readAllBytes(run.resolve("last.safetensors"));
        Path cut = Files.write(dir.resolve("cut.safetensors"), Arrays.copyOf(whole, whole.length / 2));
        assertFailure(Cli.run("generate", "--model", cut.toString(), "--prompt", "the"), "--model " + cut + ": ", "truncated");
        assertFailure(Cli.run("eval", "--model", cut.toString(), "--data", data.toString()), "--model " + cut + ": ", "truncated");
    }

    @Test
    void randomBytesAreNotACheckpoint() throws IOException {
        byte[] junk = new byte[4096];
        new SplittableRandom(7).nextBytes(junk);
        Path f = Files.write(dir.resolve("junk.safetensors"), junk);
        assertFailure(Cli.run("generate", "--model", f.toString(), "--prompt", "the"), "--model " + f + ": ");
    }

    @Test
    void textFileIsNotACheckpoint() {
        assertFailure(Cli.run("generate", "--model", data.toString(), "--prompt", "the"), "--model " + data + ": ");
    }

    @Test
    void evalOnAnEmptyFile() throws IOException {
        Path empty = Files.createFile(dir.resolve("empty.txt"));
        assertFailure(eval(empty), "--data " + empty + ": file is empty");
    }

    @Test
    void evalOnUnknownCharactersNamesTheCharacter() throws IOException {
        Path f = Cli.write(dir.resolve("shout.txt"), "the cat sat on THE mat and the dog ran far away");
        assertFailure(eval(f), "--data " + f + ": ", "'T' (U+0054) at position 15", "not in the model's vocabulary");
    }

    @Test
    void evalOnATextShorterThanOneWindow() throws IOException {
        Path f = Cli.write(dir.resolve("short.txt"), "the cat");
        assertFailure(eval(f), "--data " + f + ": 7 tokens, too few for one --seq 8 window");
    }

    @Test
    void evalFlags() {
        assertUsage(Cli.run("eval", "--model", run.toString(), "--data", data.toString(), "--seq", "0"), "--seq 0 must be positive");
        assertUsage(Cli.run("eval", "--model", run.toString()), "Missing required option: '--data=PATH'");
    }

    @Test
    void exportWritesAWeightsOnlyCheckpointAndNeverOverwrites() throws IOException {
        Path f = dir.resolve("weights.safetensors");
        Cli.Result r = Cli.run("export", "--model", run.toString(), "--out", f.toString());
        assertEquals(0, r.code(), r.err());
        byte[] before = Files.readAllBytes(f);
        assertUsage(Cli.run("export", "--model", run.toString(), "--out", f.toString()), "--out " + f + " exists", "--force");
        assertTrue(Arrays.equals(before, Files.readAllBytes(f)));
        Cli.Result g = Cli.run("generate", "--model", f.toString(), "--prompt", "the", "--seed", "1", "--length", "5");
        assertEquals(0, g.code(), g.err());
    }
}
