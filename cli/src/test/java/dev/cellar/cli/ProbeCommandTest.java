package dev.cellar.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static dev.cellar.cli.Cli.assertFailure;
import static dev.cellar.cli.Cli.assertUsage;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code cellar probe memory-span} on a tiny trained model: table, JSON, plot, and errors. */
class ProbeCommandTest {
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

    static Cli.Result probe(String... extra) {
        List<String> a = new ArrayList<>(List.of("probe", "memory-span", "--model", run.toString(), "--data", data.toString()));
        List<String> defaults = List.of("--max-k", "6", "--positions", "16", "--backend", "cpu-reference");
        for (int i = 0; i < defaults.size(); i += 2) {
            if (!List.of(extra).contains(defaults.get(i))) {
                a.addAll(defaults.subList(i, i + 2));
            }
        }
        a.addAll(List.of(extra));
        return Cli.run(a.toArray(String[]::new));
    }

    @Test
    void printsATableAndWritesThePlotAndJson() throws IOException {
        Path out = dir.resolve("probe");
        Cli.Result r = probe("--out", out.toString());
        assertEquals(0, r.code(), r.err());
        List<String> lines = r.out().lines().toList();
        assertTrue(lines.get(0).contains("16 positions, full context 12 tokens"), r.out());
        assertTrue(lines.get(1).trim().startsWith("k  "), r.out());
        for (int k = 1; k <= 6; k++) {
            assertTrue(lines.get(1 + k).trim().startsWith(k + " "), r.out());
        }
        assertTrue(r.out().contains("loss span: "), r.out());
        assertTrue(r.out().contains("gradient span: "), r.out());
        assertTrue(r.out().contains("below 1% of the largest"), r.out());
        assertNotNull(ImageIO.read(out.resolve("memory-span.png").toFile()));
        JsonNode j = new ObjectMapper().readTree(out.resolve("memory-span.json").toFile());
        assertEquals(6, j.get("context_cut").size());
        assertEquals(6, j.get("gradient").size());
        assertEquals(1.0, j.get("gradient").findValues("relative").stream().mapToDouble(JsonNode::asDouble).max().orElse(0), 1e-12);
        assertUsage(probe("--out", out.toString()), "already holds a memory-span probe", "--force");
        assertEquals(0, probe("--out", out.toString(), "--force").code());
    }

    @Test
    void jsonIsOneObjectWithBothCurvesAndSpans() throws IOException {
        Cli.Result r = probe("--json", "--threshold", "0.05");
        assertEquals(0, r.code(), r.err());
        assertEquals(1, r.out().lines().count(), r.out());
        JsonNode j = new ObjectMapper().readTree(r.out());
        assertEquals("lstm", j.get("cell").asText());
        assertEquals(6, j.get("max_k").asInt());
        assertEquals(12, j.get("full_context").asInt());
        assertEquals(16, j.get("positions").asInt());
        assertEquals(0.05, j.get("loss_threshold").asDouble());
        assertTrue(j.has("loss_span") && j.has("grad_span"));
        for (JsonNode p : j.get("gradient")) {
            assertTrue(p.get("norm").asDouble() > 0, p.toString());
        }
    }

    @Test
    void badInputIsOneErrorLine() {
        assertUsage(Cli.run("probe"), "missing probe", "memory-span");
        assertUsage(probe("--max-k", "0"), "--max-k 0 must be positive");
        assertUsage(probe("--grad-threshold", "2"), "--grad-threshold 2.0 must be in (0, 1)");
        assertFailure(Cli.run("probe", "memory-span", "--model", dir.resolve("nope").toString(), "--data", data.toString()),
                "--model", "file not found");
        assertFailure(probe("--max-k", "5000"), "--data", "needs at least 10001");
    }
}
