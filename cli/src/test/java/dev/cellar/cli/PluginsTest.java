package dev.cellar.cli;

import dev.cellar.api.spi.CellProvider;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.stream.Stream;

import static dev.cellar.cli.Cli.assertFailure;
import static dev.cellar.cli.Cli.assertUsage;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Plugin directories: cell jars compiled and packed at test time from a tiny CellProvider source, the way an outside
 * author builds one (against the api jar only).
 */
class PluginsTest {
    @TempDir
    static Path tmp;
    static Path toyA;
    static Path toyB;

    /** A cell {@code h' = tanh(W x + b + h)} with id {@code id} in package {@code pkg}. */
    static String source(String pkg, String id) {
        return """
                package %s;

                import dev.cellar.api.Init;
                import dev.cellar.api.Ops;
                import dev.cellar.api.Param;
                import dev.cellar.api.Shape;
                import dev.cellar.api.Tensor;
                import dev.cellar.api.spi.Cell;
                import dev.cellar.api.spi.CellConfig;
                import dev.cellar.api.spi.CellProvider;
                import dev.cellar.api.spi.CellSpec;
                import dev.cellar.api.spi.ParamInit;
                import dev.cellar.api.spi.State;
                import dev.cellar.api.spi.Step;
                import java.util.List;

                public final class Toy implements CellProvider {
                    public String id() { return "%s"; }
                    public CellSpec spec() { return new CellSpec("toy test cell from %s", List.of(), 1, List.of(), "1"); }
                    public Cell create(CellConfig c, ParamInit init) {
                        int h = c.hiddenSize();
                        Param w = init.param("weight_ih", Shape.of(h, c.inputSize()), Init.uniform(0.3));
                        Param b = init.param("bias_ih", Shape.of(h), Init.zeros());
                        return new Cell() {
                            public List<Param> params() { return List.of(w, b); }
                            public int outputSize() { return h; }
                            public State initialState(Ops ops, int batch) { return State.of(ops.zeros(Shape.of(batch, h))); }
                            public Step step(Ops ops, Tensor x, State s) {
                                Tensor y = ops.tanh(ops.add(ops.linear(x, w, b), s.get(0))); // (B, H)
                                return new Step(y, State.of(y));
                            }
                        };
                    }
                }
                """.formatted(pkg, id, pkg);
    }

    /** Compiles the toy cell against the api classes and packs it with its service file into {@code jar}. */
    static Path pluginJar(Path jar, String pkg, String id) throws IOException, URISyntaxException {
        return pack(jar, pkg, "Toy", source(pkg, id), CellProvider.class);
    }

    /** Compiles {@code pkg.cls} from {@code source} against the api classes and packs it as a {@code service} provider. */
    static Path pack(Path jar, String pkg, String cls, String source, Class<?> service) throws IOException, URISyntaxException {
        Path src = Files.createDirectories(tmp.resolve("src-" + pkg).resolve(pkg));
        Path classes = Files.createDirectories(tmp.resolve("classes-" + pkg));
        Path file = Files.writeString(src.resolve(cls + ".java"), source);
        String api = Path.of(CellProvider.class.getProtectionDomain().getCodeSource().getLocation().toURI()).toString();
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        int rc = javac.run(null, log, log, "--release", "17", "-cp", api, "-d", classes.toString(), file.toString());
        assertEquals(0, rc, log.toString(StandardCharsets.UTF_8));
        try (OutputStream os = Files.newOutputStream(jar); JarOutputStream j = new JarOutputStream(os);
             Stream<Path> s = Files.walk(classes)) {
            for (Path c : s.filter(Files::isRegularFile).sorted().toList()) {
                j.putNextEntry(new JarEntry(classes.relativize(c).toString().replace('\\', '/')));
                j.write(Files.readAllBytes(c));
                j.closeEntry();
            }
            j.putNextEntry(new JarEntry("META-INF/services/" + service.getName()));
            j.write((pkg + "." + cls + "\n").getBytes(StandardCharsets.UTF_8));
            j.closeEntry();
        }
        return jar;
    }

    @BeforeAll
    static void buildJars() throws Exception {
        Path jars = Files.createDirectories(tmp.resolve("jars"));
        toyA = pluginJar(jars.resolve("toy-a.jar"), "plugina", "toy");
        toyB = pluginJar(jars.resolve("toy-b.jar"), "pluginb", "toy");
    }

    static Path pluginDir(String name, Path... jars) throws IOException {
        Path d = Files.createDirectories(tmp.resolve(name));
        for (Path j : jars) {
            Files.copy(j, d.resolve(j.getFileName()));
        }
        return d;
    }

    @Test
    void cellsListsThePluginCellWithItsJar() throws IOException {
        Path d = pluginDir("one", toyA);
        Cli.Result r = Cli.run("cells", "--plugins", d.toString());
        assertEquals(0, r.code(), r.err());
        assertEquals("", r.err());
        String line = r.out().lines().filter(l -> l.startsWith("toy ")).findFirst().orElseThrow(() -> new AssertionError(r.out()));
        assertTrue(line.contains("toy-a.jar") && line.contains("toy test cell from plugina"), line);
        assertTrue(r.out().lines().anyMatch(l -> l.startsWith("lstm ") && l.contains(Registry.BUILT_IN)), r.out());
    }

    /**
     * Discovery must not ask a backend for its priority: OpenCL's answer enumerates the devices, which loads the ICD
     * loader, PoCL and LLVM into every command, even one run with --backend cpu (a debug log line did it).
     */
    @Test
    void discoveryDoesNotProbeBackends() throws Exception {
        String src = """
                package tripwire;

                import dev.cellar.api.spi.Availability;
                import dev.cellar.api.spi.Backend;
                import dev.cellar.api.spi.BackendConfig;
                import dev.cellar.api.spi.BackendProvider;

                public final class Tripwire implements BackendProvider {
                    public String id() { return "tripwire"; }
                    public int priority() { throw new IllegalStateException("priority() asked during discovery"); }
                    public Availability probe() { throw new IllegalStateException("probe() asked during discovery"); }
                    public Backend open(BackendConfig c) { throw new IllegalStateException("open() asked during discovery"); }
                }
                """;
        Path jar = pack(Files.createDirectories(tmp.resolve("jars")).resolve("tripwire.jar"), "tripwire", "Tripwire", src,
                dev.cellar.api.spi.BackendProvider.class);
        Registry r = Registry.discover(pluginDir("tripwire", jar));
        assertTrue(r.backends().containsKey("tripwire"), r.backends().keySet().toString());
        assertEquals(List.of(), r.warnings());
    }

    @Test
    void twoJarsWithOneCellIdFailNamingBoth() throws IOException {
        Path d = pluginDir("dup", toyA, toyB);
        assertUsage(Cli.run("cells", "--plugins", d.toString()), "two cells have the id 'toy'", "toy-a.jar", "toy-b.jar",
                "plugina.Toy", "pluginb.Toy", "remove one of the jars");
    }

    @Test
    void aPluginCannotReplaceABuiltInCell() throws Exception {
        Path d = Files.createDirectories(tmp.resolve("shadow"));
        pluginJar(d.resolve("my-lstm.jar"), "pluginc", "lstm");
        assertUsage(Cli.run("cells", "--plugins", d.toString()), "two cells have the id 'lstm'", Registry.BUILT_IN, "my-lstm.jar");
    }

    @Test
    void aCorruptJarIsOneWarningAndTheOthersStillLoad() throws IOException {
        Path d = pluginDir("corrupt", toyA);
        byte[] junk = new byte[2048];
        new SplittableRandom(3).nextBytes(junk);
        Files.write(d.resolve("x.jar"), junk);
        Cli.Result r = Cli.run("cells", "--plugins", d.toString());
        assertEquals(0, r.code(), r.err());
        List<String> err = r.errLines();
        assertEquals(1, err.size(), r.err());
        assertTrue(err.get(0).startsWith("warning: " + d.resolve("x.jar") + ": not a jar file"), err.get(0));
        assertTrue(err.get(0).endsWith("(skipped)"), err.get(0));
        assertTrue(r.out().lines().anyMatch(l -> l.startsWith("toy ") && l.contains("toy-a.jar")), r.out());
    }

    @Test
    void pluginsMustBeADirectory() {
        assertUsage(Cli.run("cells", "--plugins", tmp.resolve("nope").toString()), "--plugins", "not a directory");
        assertUsage(Cli.run("cells", "--plugins"), "--plugins needs a directory");
    }

    /** CELLAR_PLUGINS cannot be set in-process; Main passes this source when --plugins is absent. */
    @Test
    void aPluginDirectoryFromTheEnvironmentIsNamedAsSuch() {
        Path gone = tmp.resolve("gone");
        UsageException e = org.junit.jupiter.api.Assertions.assertThrows(UsageException.class,
                () -> Registry.discover(gone, "CELLAR_PLUGINS="));
        assertEquals("CELLAR_PLUGINS=" + gone + ": not a directory", e.getMessage());
    }

    @Test
    void trainAndGenerateWithAPluginCell() throws IOException {
        Path d = pluginDir("train", toyA);
        Path data = Cli.write(tmp.resolve("corpus.txt"), Cli.corpus(2000));
        Path run = tmp.resolve("toy-run");
        List<String> args = new java.util.ArrayList<>(List.of("train", "--plugins", d.toString(), "--data", data.toString(),
                "--out", run.toString()));
        args.addAll(Cli.TINY);
        args.set(args.indexOf("lstm"), "toy");
        Cli.Result t = Cli.run(args.toArray(String[]::new));
        assertEquals(0, t.code(), t.err());
        Cli.Result g = Cli.run("generate", "--plugins", d.toString(), "--model", run.toString(), "--prompt", "the", "--seed", "1",
                "--length", "5", "--backend", "cpu-reference");
        assertEquals(0, g.code(), g.err());
        assertTrue(g.out().startsWith("the"), g.out());
        assertFailure(Cli.run("generate", "--model", run.toString(), "--prompt", "the"), "unknown cell 'toy'", "--plugins");
    }
}
