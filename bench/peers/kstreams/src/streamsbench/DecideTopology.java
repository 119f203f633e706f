package streamsbench;

import java.time.Instant;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.ProcessorSupplier;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.StoreBuilder;
import org.apache.kafka.streams.state.Stores;

/**
 * commands topic → one processor over a persistent (RocksDB) key-value store of orders, with its
 * changelog and Kafka Streams' record cache → events topic. Per command: decode the JSON, get the
 * order, decide, evolve and put it (accepted), and forward one output record (event or rejection).
 */
final class DecideTopology {
    /** The store's name (its changelog topic is {@code <application.id>-orders-changelog}). */
    static final String STORE = "orders";

    private DecideTopology() {}

    /** Outcome counters, shared with the thread that waits for the expected count. */
    static final class Counts {
        final AtomicLong accepted = new AtomicLong();
        final AtomicLong rejected = new AtomicLong();
        /** When the first command was processed: microseconds since the epoch (0 before). */
        final AtomicLong firstAtMicros = new AtomicLong();
        final CountDownLatch done;

        Counts(long expected) {
            done = new CountDownLatch(expected > Integer.MAX_VALUE ? Integer.MAX_VALUE : (int) expected);
        }
    }

    /** The topology from {@code input} to {@code output}, counting outcomes into {@code counts}. */
    static Topology build(String input, String output, Counts counts) {
        StoreBuilder<KeyValueStore<String, Orders.Order>> store = Stores.keyValueStoreBuilder(
                        Stores.persistentKeyValueStore(STORE), Serdes.String(), OrderSerde.serde())
                .withCachingEnabled();
        ProcessorSupplier<String, byte[], String, byte[]> decide = new ProcessorSupplier<>() {
            @Override
            public Processor<String, byte[], String, byte[]> get() {
                return new Decide(counts);
            }

            @Override
            public Set<StoreBuilder<?>> stores() {
                return Set.of(store);
            }
        };
        Topology topology = new Topology();
        topology.addSource("commands", Serdes.String().deserializer(), Serdes.ByteArray().deserializer(), input);
        topology.addProcessor("decide", decide, "commands");
        topology.addSink("events", output, Serdes.String().serializer(), Serdes.ByteArray().serializer(), "decide");
        return topology;
    }

    private static final class Decide implements Processor<String, byte[], String, byte[]> {
        private final Counts counts;
        private ProcessorContext<String, byte[]> context;
        private KeyValueStore<String, Orders.Order> orders;

        Decide(Counts counts) {
            this.counts = counts;
        }

        @Override
        public void init(ProcessorContext<String, byte[]> context) {
            this.context = context;
            this.orders = context.getStateStore(STORE);
        }

        @Override
        public void process(Record<String, byte[]> record) {
            if (counts.firstAtMicros.get() == 0) {
                Instant now = Instant.now();
                counts.firstAtMicros.set(now.getEpochSecond() * 1_000_000L + now.getNano() / 1_000);
            }
            Orders.Command command = Wire.command(record.value());
            Orders.Order state = orders.get(record.key());
            if (state == null) {
                state = Orders.Order.INITIAL;
            }
            byte[] out;
            try {
                Orders.Event event = Orders.decide(state, command);
                orders.put(record.key(), Orders.evolve(state, event));
                out = Wire.event(event);
                counts.accepted.incrementAndGet();
            } catch (Orders.Rejected rejected) {
                out = Wire.rejection(rejected.reason, command);
                counts.rejected.incrementAndGet();
            }
            context.forward(record.withValue(out));
            counts.done.countDown();
        }
    }
}
