package dev.cellar.kernels.cpu;

import dev.cellar.api.spi.BackendConfig;
import org.junit.jupiter.api.Test;

import java.io.DataInputStream;
import java.lang.management.ManagementFactory;
import java.lang.reflect.Method;
import java.io.IOException;
import java.io.InputStream;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import javax.management.MBeanServer;
import javax.management.ObjectName;

import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Guards what keeps the cpu backend's vector code compiled as vector code: the compiler directive naming the kernels'
 * entry points (CompileRoots) and, without it, VectorPointwise.activate's length. Class files are read as bytes; the
 * classes are not loaded, so the first tests run without jdk.incubator.vector too.
 */
class CompileRootsTest {
    private static final int FREQ_INLINE_SIZE = 325;

    /**
     * activate must stay too long for C2 to inline (FreqInlineSize, 325 bytes on x86-64 for JDK 17 to 25), so that its
     * vector code is compiled at the top of its own compilation even where the directive could not be added.
     */
    @Test
    void theActivationKernelIsTooLongForC2ToInline() throws IOException {
        Map<String, Integer> lengths = codeLengths("VectorPointwise.class");
        Integer activate = lengths.get("activate");
        assertNotNull(activate, "VectorPointwise has no method activate; methods: " + lengths.keySet());
        assertTrue(activate > FREQ_INLINE_SIZE, "VectorPointwise.activate is " + activate + " bytes of bytecode, at most "
                + FREQ_INLINE_SIZE + ": C2 may inline it into deep callers and box its vectors");
    }

    @Test
    void everyMethodTheDirectiveNamesExists() throws IOException {
        for (String m : CompileRoots.METHODS) {
            String cls = m.substring(0, m.indexOf('.')), method = m.substring(m.indexOf('.') + 1);
            assertTrue(codeLengths(cls + ".class").containsKey(method), m + " is not a method of " + cls);
        }
    }

    /** Every Pointwise kernel is a root, or one call to activate (tanh, sigmoid, exp), which is. */
    @Test
    void everyPointwiseKernelIsNamed() {
        for (Method m : Pointwise.class.getDeclaredMethods()) {
            String name = m.getName();
            boolean named = CompileRoots.METHODS.contains("VectorPointwise." + name) || List.of("tanh", "sigmoid", "exp").contains(name);
            assertTrue(named, "VectorPointwise." + name + " holds vector code and is not in CompileRoots.METHODS");
        }
    }

    @Test
    void theDirectiveIsSyntaxThatHotSpotParses() {
        String d = CompileRoots.directive();
        assertTrue(d.startsWith("[{ match: \"*.*\", inline: [\"-dev/cellar/kernels/cpu/VectorPointwise.activate\""), d);
        assertTrue(d.endsWith("\"-dev/cellar/kernels/cpu/VectorGemm.panels\"] }]"), d);
    }

    /** Opening the backend adds the directive; the JVM's own listing of its directives shows it. */
    @Test
    void openingTheVectorBackendAddsTheDirective() throws Exception {
        assumeTrue(CpuProvider.vectorAvailable(), "needs --add-modules jdk.incubator.vector");
        assumeTrue(ModuleLayer.boot().findModule("jdk.management").isPresent(), "needs jdk.management");
        new CpuProvider().open(new BackendConfig(1, null, Map.of())).close();
        MBeanServer server = ManagementFactory.getPlatformMBeanServer();
        ObjectName dc = new ObjectName("com.sun.management:type=DiagnosticCommand");
        String listing = "";
        for (int i = 0; i < 200 && !listing.contains("VectorGemm.panels"); i++) {
            listing = (String) server.invoke(dc, "compilerDirectivesPrint", new Object[] {new String[0]},
                    new String[] {String[].class.getName()});
            Thread.sleep(50); // the directive is added on a daemon thread
        }
        assertTrue(listing.contains("-dev/cellar/kernels/cpu/VectorPointwise.lstmForward"), listing);
        assertTrue(listing.contains("-dev/cellar/kernels/cpu/VectorGemm.panels"), listing);
    }

    @Test
    void theParserReadsTheLengthsOfThisClass() throws IOException {
        Map<String, Integer> lengths = codeLengths("CompileRootsTest.class");
        // codeLengths itself is a long method, FREQ_INLINE_SIZE's getter-free test a short one
        assertTrue(lengths.get("codeLengths") > 100, lengths.toString());
        assertTrue(lengths.get("theParserReadsTheLengthsOfThisClass") < lengths.get("codeLengths"), lengths.toString());
    }

    /** Each method's name and the length of its Code attribute (JVMS 4.1, 4.4, 4.6, 4.7.3). */
    private static Map<String, Integer> codeLengths(String resource) throws IOException {
        try (InputStream raw = CompileRootsTest.class.getResourceAsStream(resource)) {
            assertNotNull(raw, resource + " is not on the test class path");
            DataInputStream in = new DataInputStream(raw);
            in.readInt(); // magic
            in.readUnsignedShort(); // minor
            in.readUnsignedShort(); // major
            int count = in.readUnsignedShort();
            String[] utf8 = new String[count];
            for (int i = 1; i < count; i++) {
                int tag = in.readUnsignedByte();
                switch (tag) {
                    case 1 -> utf8[i] = in.readUTF();
                    case 3, 4, 9, 10, 11, 12, 17, 18 -> in.skipNBytes(4);
                    case 5, 6 -> {
                        in.skipNBytes(8);
                        i++; // a long or double takes two entries
                    }
                    case 7, 8, 16, 19, 20 -> in.skipNBytes(2);
                    case 15 -> in.skipNBytes(3);
                    default -> throw new IOException("constant pool tag " + tag + " at entry " + i + " of " + resource);
                }
            }
            in.skipNBytes(6); // access flags, this class, super class
            in.skipNBytes(2L * in.readUnsignedShort()); // interfaces
            int fields = in.readUnsignedShort();
            for (int f = 0; f < fields; f++) {
                in.skipNBytes(6);
                skipAttributes(in);
            }
            Map<String, Integer> lengths = new HashMap<>();
            int methods = in.readUnsignedShort();
            for (int m = 0; m < methods; m++) {
                in.skipNBytes(2);
                String name = utf8[in.readUnsignedShort()];
                in.skipNBytes(2);
                int attributes = in.readUnsignedShort();
                for (int a = 0; a < attributes; a++) {
                    String attribute = utf8[in.readUnsignedShort()];
                    int length = in.readInt();
                    if (attribute.equals("Code")) {
                        in.skipNBytes(4); // max_stack, max_locals
                        int code = in.readInt();
                        lengths.merge(name, code, Math::max);
                        in.skipNBytes(length - 8L);
                    } else {
                        in.skipNBytes(length);
                    }
                }
            }
            return lengths;
        }
    }

    private static void skipAttributes(DataInputStream in) throws IOException {
        int attributes = in.readUnsignedShort();
        for (int a = 0; a < attributes; a++) {
            in.skipNBytes(2);
            in.skipNBytes(in.readInt() & 0xffffffffL);
        }
    }
}
