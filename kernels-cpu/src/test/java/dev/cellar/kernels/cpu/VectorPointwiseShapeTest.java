package dev.cellar.kernels.cpu;

import org.junit.jupiter.api.Test;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Guards two properties of VectorPointwise's bytecode that keep C2 compiling its vector code as vector code, not as
 * boxed objects: the activation kernels stay too long to inline (FreqInlineSize, 325 bytes on x86-64 for JDK 17 to 25), and no
 * kernel looks a species up at run time. The class file is read as bytes; the class itself is not loaded, so this
 * runs without jdk.incubator.vector too.
 */
class VectorPointwiseShapeTest {
    private static final int FREQ_INLINE_SIZE = 325;

    @Test
    void theActivationKernelsAreTooLongForC2ToInline() throws IOException {
        Map<String, Integer> lengths = codeLengths("VectorPointwise.class");
        for (String kernel : List.of("expVectors", "sigmoidVectors", "tanhVectors")) {
            Integer length = lengths.get(kernel);
            assertNotNull(length, "VectorPointwise has no method " + kernel + "; methods: " + lengths.keySet());
            assertTrue(length > FREQ_INLINE_SIZE, "VectorPointwise." + kernel + " is " + length + " bytes of bytecode, at most "
                    + FREQ_INLINE_SIZE + ": C2 may inline it into deep callers and box its vectors");
        }
    }

    /**
     * reinterpretAsInts and reinterpretAsFloats find their species through AbstractSpecies.computeSpecies; where C2
     * leaves that call out of line (it did in about one run in four) every vector after it is boxed. The kernels
     * reinterpret to a named species instead.
     */
    @Test
    void noKernelLooksItsSpeciesUp() throws IOException {
        Set<String> names = constants("VectorPointwise.class");
        for (String lookup : List.of("reinterpretAsInts", "reinterpretAsFloats", "withLanes")) {
            assertFalse(names.contains(lookup), "VectorPointwise calls " + lookup + "; use reinterpretShape(species, 0)");
        }
        assertTrue(names.contains("reinterpretShape"), "the parser found no call to reinterpretShape: " + names.size());
    }

    /**
     * No vector crosses a method boundary of the kernels' own: a helper taking or returning one is boxed whenever C2
     * leaves it out of line (VectorGemm's store helper was, once rows8's compilation reached NodeCountInliningCutoff).
     */
    @Test
    void noKernelMethodTakesOrReturnsAVector() throws IOException {
        for (String cls : List.of("VectorPointwise.class", "VectorGemm.class")) {
            Set<String> descriptors = new HashSet<>();
            parse(cls, new HashSet<>(), descriptors);
            assertFalse(descriptors.isEmpty(), "the parser found no methods in " + cls);
            for (String d : descriptors) {
                assertFalse(d.contains("Ljdk/incubator/vector/"), cls + " has a method " + d + " that passes a vector");
            }
        }
    }

    @Test
    void theParserReadsTheLengthsOfThisClass() throws IOException {
        Map<String, Integer> lengths = codeLengths("VectorPointwiseShapeTest.class");
        // parse itself is a long method, this test a short one
        assertTrue(lengths.get("parse") > 100, lengths.toString());
        assertTrue(lengths.get("theParserReadsTheLengthsOfThisClass") < lengths.get("parse"), lengths.toString());
    }

    /** The class file's UTF-8 constants: every name it defines or calls, among others. */
    private static Set<String> constants(String resource) throws IOException {
        Set<String> out = new HashSet<>();
        parse(resource, out, new HashSet<>());
        return out;
    }

    /** Each method's name and the length of its Code attribute (JVMS 4.1, 4.4, 4.6, 4.7.3). */
    private static Map<String, Integer> codeLengths(String resource) throws IOException {
        return parse(resource, new HashSet<>(), new HashSet<>());
    }

    /** Code lengths by method name; fills {@code constants} with the UTF-8 constants and {@code descriptors} with
     *  the methods' own "name descriptor" pairs. */
    private static Map<String, Integer> parse(String resource, Set<String> constants, Set<String> descriptors)
            throws IOException {
        try (InputStream raw = VectorPointwiseShapeTest.class.getResourceAsStream(resource)) {
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
                    case 1 -> {
                        utf8[i] = in.readUTF();
                        constants.add(utf8[i]);
                    }
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
                descriptors.add(name + " " + utf8[in.readUnsignedShort()]);
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
