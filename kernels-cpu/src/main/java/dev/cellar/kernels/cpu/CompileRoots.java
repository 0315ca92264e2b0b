package dev.cellar.kernels.cpu;

import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Collectors;
import javax.management.MBeanServer;
import javax.management.ObjectName;

/**
 * Asks HotSpot's C2 never to inline the Vector API kernels into their callers, so that each is compiled at the top of
 * its own compilation. Inlined at the bottom of a deep chain (a worker's loop, a FutureTask, a kernel's lambda, a tape
 * operation's backward) the Vector API's own dozen levels of force-inlined calls went past MaxInlineLevel, the
 * intrinsics failed and every vector became an object: 100 to 200 MB allocated per RNN training step in some runs and
 * 2 MB in others, depending on which method C2 happened to compile first.
 *
 * <p>The request is a compiler directive (JEP 165), added at run time through the DiagnosticCommand MBean as
 * {@code jcmd <pid> Compiler.directives_add} would. It takes a file, written to the temporary directory and deleted
 * at once. Starting the platform MBean server costs 150 to 300 ms, so it runs on a daemon thread beside the work.
 * Where the JVM has no such MBean (not HotSpot, or a runtime without jdk.management) nothing is added and the kernels
 * still compute the same results; {@code -Dcellar.cpu.directives=false} skips it.
 */
final class CompileRoots {
    /** The kernels' entry points: every method that holds vector code and is called from outside its class. */
    static final List<String> METHODS = List.of(
            "VectorPointwise.activate", "VectorPointwise.lstmForward", "VectorPointwise.lstmBackward",
            "VectorPointwise.gruForward", "VectorPointwise.gruBackward", "VectorPointwise.softmax",
            "VectorPointwise.softmaxBackward", "VectorPointwise.crossEntropy", "VectorPointwise.crossEntropyBackward",
            "VectorPointwise.gelu", "VectorPointwise.geluGrad", "VectorGemm.panels");
    private static final AtomicBoolean STARTED = new AtomicBoolean();
    private static final System.Logger LOG = System.getLogger(CompileRoots.class.getName());

    private CompileRoots() {
    }

    /** The directive: for every compilation, none of {@link #METHODS} inlined. */
    static String directive() {
        String pkg = CompileRoots.class.getPackageName().replace('.', '/');
        return "[{ match: \"*.*\", inline: ["
                + METHODS.stream().map(m -> "\"-" + pkg + "/" + m + "\"").collect(Collectors.joining(", ")) + "] }]";
    }

    /** Adds the directive once per JVM, on a daemon thread. */
    static void install() {
        if (!Boolean.parseBoolean(System.getProperty("cellar.cpu.directives", "true"))
                || ModuleLayer.boot().findModule("jdk.management").isEmpty() || !STARTED.compareAndSet(false, true)) {
            return;
        }
        Thread t = new Thread(CompileRoots::add, "cellar-compile-roots");
        t.setDaemon(true);
        t.start();
    }

    private static void add() {
        Path file = null;
        try {
            file = Files.createTempFile("cellar-directives", ".json");
            Files.writeString(file, directive(), StandardCharsets.UTF_8);
            MBeanServer server = ManagementFactory.getPlatformMBeanServer();
            Object answer = server.invoke(new ObjectName("com.sun.management:type=DiagnosticCommand"),
                    "compilerDirectivesAdd", new Object[] {new String[] {file.toString()}},
                    new String[] {String[].class.getName()});
            LOG.log(System.Logger.Level.DEBUG, "compiler directive for the vector kernels: {0}", answer);
        } catch (Exception | LinkageError e) {
            LOG.log(System.Logger.Level.DEBUG, "no compiler directive for the vector kernels: " + e);
        } finally {
            if (file != null) {
                try {
                    Files.deleteIfExists(file);
                } catch (Exception ignored) {
                    // a temporary file left behind is harmless
                }
            }
        }
    }
}
