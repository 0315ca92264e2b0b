package dev.cellar.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static dev.cellar.cli.Cli.assertFailure;
import static dev.cellar.cli.Cli.assertUsage;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code cellar compare} end to end on a tiny corpus, and its errors. */
class CompareCommandTest {
    /** Tiny models: each trains in well under a second on cpu-reference. */
    static final List<String> TINY = List.of("--hidden", "8", "--layers", "1", "--seq", "8", "--batch", "4", "--epochs", "1",
            "--eval-every", "20", "--sample-length", "20", "--backend", "cpu-reference", "--seed", "1");
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;
    Path data;
    Path out;

    @BeforeEach
    void corpus() throws IOException {
        data = Cli.write(dir.resolve("corpus.txt"), "To be or not to be, that is the question.\n" + Cli.corpus(3000));
        out = dir.resolve("cmp");
    }

    static Cli.Result compare(Path data, Path out, String... extra) {
        List<String> a = new ArrayList<>(List.of("compare", "--data", data.toString(), "--out", out.toString()));
        a.addAll(List.of(extra));
        List<String> more = List.of(extra);
        for (int i = 0; i < TINY.size(); i += 2) {
            if (!more.contains(TINY.get(i))) {
                a.addAll(TINY.subList(i, i + 2));
            }
        }
        return Cli.run(a.toArray(String[]::new));
    }

    @Test
    void comparesTwoCellsIntoResultsAndAPlot() throws IOException {
        Cli.Result r = compare(data, out, "--cells", "lstm,gru");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("[1/2] lstm 1x8") && r.err().contains("[2/2] gru 1x8"), r.err()); // train's progress lines
        assertTrue(r.err().contains("validation"), r.err());

        JsonNode j = JSON.readTree(out.resolve("results.json").toFile());
        assertEquals("char", j.get("tokenizer").asText());
        assertEquals(1, j.get("settings").get("layers").asInt());
        assertEquals(8, j.get("settings").get("hidden").asInt());
        double wordsPerToken = j.get("words_per_token").asDouble();
        assertTrue(wordsPerToken > 0.1 && wordsPerToken < 0.5, "words per char " + wordsPerToken);
        JsonNode models = j.get("models");
        assertEquals(2, models.size());
        assertEquals(List.of("lstm", "gru"), List.of(models.get(0).get("cell").asText(), models.get(1).get("cell").asText()));
        for (JsonNode m : models) {
            String cell = m.get("cell").asText();
            assertTrue(m.get("parameters").asLong() > 0);
            assertTrue(m.get("steps").asLong() > 0);
            assertEquals(1.0, m.get("epochs").asDouble(), 1e-9, cell + ": one full epoch");
            assertFalse(m.get("stopped_early").asBoolean());
            assertTrue(m.get("wall_seconds").asDouble() >= m.get("train_seconds").asDouble());
            assertTrue(m.get("tokens_per_second").asDouble() > 0);
            double nats = m.get("val_nats_per_token").asDouble();
            assertTrue(nats > 0 && nats < 5, cell + " " + nats);
            assertEquals(nats / Math.log(2), m.get("val_bits_per_char").asDouble(), 1e-9); // char: one character per token
            assertEquals(Math.exp(nats), m.get("val_perplexity_per_token").asDouble(), 1e-9);
            assertEquals(Math.exp(nats / wordsPerToken), m.get("val_perplexity_per_word").asDouble(), 1e-6);
            assertTrue(m.get("sample").asText().startsWith("To be or not to be"), m.get("sample").asText());
            assertTrue(m.get("sample").asText().length() > "To be or not to be".length());
            JsonNode curve = m.get("curve");
            assertTrue(curve.size() >= 2, cell + " has " + curve.size() + " validation points");
            assertEquals(nats, curve.get(curve.size() - 1).get("val_loss").asDouble(), 1e-12);
            double best = Double.POSITIVE_INFINITY;
            long bestStep = -1;
            for (JsonNode p : curve) {
                if (p.get("val_loss").asDouble() < best) {
                    best = p.get("val_loss").asDouble();
                    bestStep = p.get("step").asLong();
                }
            }
            assertEquals(best, m.get("best_val_nats_per_token").asDouble(), 0.0, cell + ": the lowest point of the curve");
            assertEquals(bestStep, m.get("best_step").asLong());
            assertEquals((double) bestStep / m.get("steps").asLong(), m.get("best_epoch").asDouble(), 1e-9, "one epoch in all");
            assertEquals(Math.exp(best / wordsPerToken), m.get("best_val_perplexity_per_word").asDouble(), 1e-6);
            assertTrue(Files.exists(out.resolve(cell).resolve("last.safetensors")), cell + " is a normal run directory");
            assertTrue(Files.readString(out.resolve(cell).resolve("metrics.jsonl")).contains("val_loss"));
        }
        assertNotEquals(models.get(0).get("parameters").asLong(), models.get(1).get("parameters").asLong());
        // the same settings: identical step counts
        assertEquals(models.get(0).get("steps").asLong(), models.get(1).get("steps").asLong());

        String md = Files.readString(out.resolve("results.md"));
        assertTrue(md.contains("| cell | parameters | epochs | wall time | tok/s | val nats/token | bits/char | ppl/token | ppl/word "
                + "| best val nats/token (epoch) | best ppl/word |"), md);
        for (JsonNode m : models) {
            String row = String.format("| %s | %,d | 1.00 | ", m.get("cell").asText(), m.get("parameters").asLong());
            assertTrue(md.contains(row), row + " not in\n" + md);
            assertTrue(md.contains(String.format(" | %.4f | ", m.get("val_nats_per_token").asDouble())), md);
            assertTrue(r.out().contains(row), "the table is printed too:\n" + r.out());
        }
        assertTrue(md.contains("**ppl/word**: exp(total nats / words)"), md);
        assertTrue(md.contains("![validation loss against wall-clock time](loss.png)"), md);
        assertTrue(md.contains("### gru\n\n```\nTo be or not to be"), md);

        byte[] png = Files.readAllBytes(out.resolve("loss.png"));
        assertArrayEquals(new byte[]{(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'}, Arrays.copyOf(png, 8));
        BufferedImage img = ImageIO.read(out.resolve("loss.png").toFile());
        assertNotNull(img);
        assertTrue(img.getWidth() >= 400 && img.getHeight() >= 300, img.getWidth() + "x" + img.getHeight());

        // each run directory works with the other commands
        Cli.Result ev = Cli.run("eval", "--model", out.resolve("gru").toString(), "--data", data.toString(), "--backend",
                "cpu-reference", "--batch", "4", "--seq", "8");
        assertEquals(0, ev.code(), ev.err());
        Cli.Result gen = Cli.run("generate", "--model", out.resolve("lstm").toString(), "--prompt", "To be", "--length", "5",
                "--seed", "1", "--backend", "cpu-reference");
        assertEquals(0, gen.code(), gen.err());
    }

    /** Word level: per-word perplexity is per-token perplexity; a prompt word outside the vocabulary is fed as <unk>. */
    @Test
    void wordTokenizerReportsPerplexityPerWord() throws IOException {
        Path words = Cli.write(dir.resolve("words.txt"), Cli.corpus(6000));
        Cli.Result r = compare(words, out, "--cells", "rnn", "--tokenizer", "word");
        assertEquals(0, r.code(), r.err());
        JsonNode j = JSON.readTree(out.resolve("results.json").toFile());
        assertEquals(1.0, j.get("words_per_token").asDouble());
        JsonNode m = j.get("models").get(0);
        assertEquals(m.get("val_perplexity_per_token").asDouble(), m.get("val_perplexity_per_word").asDouble(), 1e-9);
        assertTrue(m.get("sample_note").asText().contains("<unk>"), m.toString());
        assertTrue(m.get("sample").asText().startsWith("To be or not to be"), m.toString());
        assertTrue(Files.readString(out.resolve("results.md")).contains("For the word tokenizer this is ppl/token"));
    }

    @Test
    void theTimeBudgetAppliesToEachModel() throws IOException {
        Cli.Result r = compare(data, out, "--cells", "rnn,gru", "--epochs", "10000", "--time-budget", "1s", "--eval-every", "0");
        assertEquals(0, r.code(), r.err());
        JsonNode j = JSON.readTree(out.resolve("results.json").toFile());
        assertEquals(1.0, j.get("settings").get("time_budget_s_per_model").asDouble());
        for (JsonNode m : j.get("models")) {
            assertTrue(m.get("stopped_early").asBoolean(), m.toString());
            assertTrue(m.get("train_seconds").asDouble() >= 1.0 && m.get("train_seconds").asDouble() < 5, m.toString());
            assertEquals(1, m.get("curve").size(), "validation at the end only: " + m);
        }
    }

    /** Early stopping: a model whose validation loss stalls for --patience validations is finished, not interrupted. */
    @Test
    void patienceStopsAModelWhoseValidationStalls() throws IOException {
        // a learning rate far too high: the validation loss jumps about and soon stops setting new bests
        Cli.Result r = compare(data, out, "--cells", "rnn", "--epochs", "200", "--lr", "0.5", "--eval-every", "5", "--patience", "2");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("(early stopping: no better validation in the last 2)"), r.err());
        JsonNode j = JSON.readTree(out.resolve("results.json").toFile());
        assertEquals(2, j.get("settings").get("patience").asInt());
        JsonNode m = j.get("models").get(0);
        assertTrue(m.get("early_stopping").asBoolean() && m.get("stopped_early").asBoolean(), m.toString());
        assertTrue(m.get("epochs").asDouble() < 200, m.toString());
        JsonNode curve = m.get("curve");
        assertEquals(m.get("best_step").asLong() + 2 * 5, curve.get(curve.size() - 1).get("step").asLong(),
                "two validations after the best one: " + curve);
        assertTrue(Files.readString(out.resolve("results.md")).contains("stops early once 2 validations in a row"));
        assertTrue(Files.exists(out.resolve("rnn").resolve("result.json")), "a model stopped by its patience is finished");
        r = compare(data, out, "--cells", "rnn", "--epochs", "200", "--lr", "0.5", "--eval-every", "5", "--patience", "2", "--resume");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("[1/1] rnn finished earlier"), r.err());

        assertUsage(compare(data, dir.resolve("p"), "--cells", "rnn", "--patience", "-1"), "--patience -1 must not be negative");
        assertUsage(compare(data, dir.resolve("p"), "--cells", "rnn", "--patience", "3", "--eval-every", "0"),
                "--patience 3 counts validations", "--eval-every N");
    }

    @Test
    void unknownCellIsAUsageErrorBeforeAnyTraining() {
        assertUsage(compare(data, out, "--cells", "lstm,lstn"), "unknown cell 'lstn'", "gru", "transformer");
        assertFalse(Files.exists(out));
    }

    @Test
    void aCellNamedTwiceIsAUsageError() {
        assertUsage(compare(data, out, "--cells", "gru,gru"), "--cells gru,gru names a cell twice");
    }

    @Test
    void anExistingComparisonIsReplacedOnlyWithForce() throws IOException {
        assertEquals(0, compare(data, out, "--cells", "rnn", "--eval-every", "0").code());
        String before = Files.readString(out.resolve("results.json"));
        assertUsage(compare(data, out, "--cells", "rnn"), "--out " + out + " already holds a comparison", "--force");
        assertUsage(compare(data, out, "--cells", "gru,rnn"), "already holds a comparison");
        assertEquals(before, Files.readString(out.resolve("results.json")));
        Cli.Result r = compare(data, out, "--cells", "rnn", "--eval-every", "0", "--seed", "2", "--force");
        assertEquals(0, r.code(), r.err());
        assertNotEquals(before, Files.readString(out.resolve("results.json")));
        long vals = Files.readString(out.resolve("rnn").resolve("metrics.jsonl")).lines().filter(l -> l.contains("val_loss")).count();
        assertEquals(1, vals, "the old run's metrics were replaced, not appended to");
    }

    @Test
    void resumeContinuesTheComparisonAndReportsEveryModel() throws IOException {
        assertUsage(compare(data, out, "--cells", "rnn", "--resume"), "--resume", "holds no checkpoint or result of rnn", "drop --resume");
        assertEquals(0, compare(data, out, "--cells", "rnn", "--epochs", "1").code());
        long steps = JSON.readTree(out.resolve("results.json").toFile()).get("models").get(0).get("steps").asLong();
        assertUsage(compare(data, out, "--cells", "rnn", "--resume", "--force"), "pass one of them");
        assertFailure(compare(data, out, "--cells", "rnn", "--resume", "--hidden", "12"), "finished with other settings", "rnn 1x8", "rnn 1x12");

        Cli.Result r = compare(data, out, "--cells", "rnn,gru", "--epochs", "2", "--resume");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("rnn 1x8 (") && r.err().contains("resuming from its last checkpoint"), r.err());
        JsonNode models = JSON.readTree(out.resolve("results.json").toFile()).get("models");
        assertEquals(2, models.size(), "the resumed model and the new one are both reported");
        assertEquals(2 * steps, models.get(0).get("steps").asLong(), "rnn trained its second epoch on top of the first");
        assertEquals(2 * steps, models.get(1).get("steps").asLong());
        assertTrue(Files.exists(out.resolve("rnn").resolve("curve.jsonl")));

        String before = Files.readString(out.resolve("results.json"));
        r = compare(data, out, "--cells", "rnn,gru", "--epochs", "2", "--resume");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("[1/2] rnn finished earlier") && r.err().contains("[2/2] gru finished earlier"), r.err());
        assertEquals(before, Files.readString(out.resolve("results.json")), "finished models are reported from their result.json as they were");
    }

    @Test
    void badInputIsOneErrorLine() throws IOException {
        assertFailure(compare(dir.resolve("nope.txt"), out, "--cells", "rnn"), "--data", "nope.txt: file not found");
        assertUsage(compare(data, out, "--cells", "rnn", "--time-budget", "soon"), "--time-budget soon is not a duration");
        assertUsage(compare(data, out, "--cells", "rnn", "--hidden", "0"), "--hidden 0 must be positive");
        assertUsage(compare(data, out, "--cells", "rnn", "--tokenizer", "bytes"), "--tokenizer bytes");
        assertUsage(compare(data, out, "--cells", "rnn", "--backend", "tpu"), "unknown backend 'tpu'");
        assertFailure(compare(data, out, "--cells", "transformer", "--hidden", "6"), "transformer", "hidden 6 not divisible by heads 4");
        Files.writeString(dir.resolve("file"), "x");
        assertUsage(compare(data, dir.resolve("file"), "--cells", "rnn"), "is a file");
        assertFailure(compare(Cli.write(dir.resolve("tiny.txt"), "To be or not."), out, "--cells", "rnn"), "too short");
        assertFailure(compare(Cli.write(dir.resolve("short.txt"), "To be or not to be, that is the question."), out, "--cells", "rnn"),
                "validation part (5 tokens)", "--val-fraction");
        assertFalse(Files.exists(out.resolve("results.json")));
    }
}
