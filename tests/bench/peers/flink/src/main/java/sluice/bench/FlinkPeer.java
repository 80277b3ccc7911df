package sluice.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.UUID;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.functions.RichFlatMapFunction;
import org.apache.flink.api.common.serialization.SimpleStringEncoder;
import org.apache.flink.api.common.serialization.SimpleStringSchema;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.api.common.JobStatus;
import org.apache.flink.connector.file.sink.FileSink;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.core.fs.Path;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.filesystem.bucketassigners.BasePathBucketAssigner;
import org.apache.flink.streaming.api.functions.windowing.ProcessWindowFunction;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import redis.clients.jedis.Jedis;
import redis.clients.jedis.Pipeline;

/**
 * The Flink peer of the benchmarks (tests/bench/peers/compare.py), in a local mini-cluster of
 * parallelism 2 (the cores of the machine).
 *
 * <pre>
 *   FlinkPeer w1 BROKERS TOPIC OUT_DIR CHECKPOINT_DIR (unused: the mini-cluster keeps its
 *                                                 checkpoints in memory, its default)
 *   FlinkPeer w2 BROKERS TOPIC REDIS_HOST:PORT WATERMARK_MS
 *   FlinkPeer latency BROKERS TOPIC OUT_TOPIC
 * </pre>
 *
 * Both read TOPIC from the earliest offsets up to the end offsets it has at start (a bounded
 * KafkaSource, setBounded(latest): the job ends when it has read them, as sluice's available-now
 * trigger does), in streaming mode. w1: parse JSON, keep event == "buy", write {"user","amount"}
 * lines with a FileSink (exactly once: files are committed by checkpoints, every second, and the
 * final checkpoint at the end of the input). w2: event time from ts with bounded out-of-orderness
 * WATERMARK_MS, assigned in the source (per partition), keyBy user, tumbling 10 s windows,
 * sum(amount) and count() (an incremental AggregateFunction), each window written to Redis as HSET
 * w2:&lt;window_start&gt;:&lt;user&gt; total T orders N by a Sink whose writers pipeline with jedis
 * and sync at every checkpoint (flush) and at the end. Prints {"records": null, "out": null}.
 *
 * <p>latency: the latency benchmark's stateless job (tests/bench/latency.py), Flink's default
 * pipeline: an unbounded KafkaSource from the latest offsets, parse, keep id % 10 != 7, a KafkaSink
 * of {"id","t","user"} to OUT_TOPIC with its defaults (no checkpointing, delivery guarantee none,
 * the network buffers' timeout of 100 ms), until SIGTERM. Says "bench_peer: ready" on stderr once
 * the job runs.
 */
public final class FlinkPeer {
  static final long WINDOW_MS = 10_000;
  static final ObjectMapper JSON = new ObjectMapper();

  public static void main(String[] args) throws Exception {
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
    env.setParallelism(Integer.getInteger("peer.parallelism", 2));
    if (args.length == 4 && args[0].equals("latency")) {
      latency(env, args[1], args[2], args[3]);
      return;
    }
    env.enableCheckpointing(Long.getLong("peer.checkpoint.ms", 1000));
    JobExecutionResult r;
    if (args.length == 5 && args[0].equals("w1")) {
      w1(env, args[1], args[2], args[3]);
      r = env.execute("bench-flink-w1");
    } else if (args.length == 5 && args[0].equals("w2")) {
      w2(env, args[1], args[2], args[3], Long.parseLong(args[4]));
      r = env.execute("bench-flink-w2");
    } else {
      System.err.println(
          "usage: FlinkPeer w1 BROKERS TOPIC OUT_DIR CKPT_DIR"
              + " | w2 BROKERS TOPIC REDIS_HOST:PORT WATERMARK_MS | latency BROKERS TOPIC OUT");
      System.exit(2);
      return;
    }
    System.out.println("{\"records\": null, \"out\": null}");
    System.exit(r == null ? 1 : 0);
  }

  static void latency(StreamExecutionEnvironment env, String brokers, String in, String out)
      throws Exception {
    KafkaSource<String> src =
        KafkaSource.<String>builder()
            .setBootstrapServers(brokers)
            .setTopics(in)
            .setGroupId("bench-flink-latency-" + UUID.randomUUID())
            .setStartingOffsets(OffsetsInitializer.latest())
            .setValueOnlyDeserializer(new SimpleStringSchema())
            .build();
    env.fromSource(src, WatermarkStrategy.noWatermarks(), "kafka")
        .flatMap(new LatencyRow())
        .sinkTo(
            KafkaSink.<String>builder()
                .setBootstrapServers(brokers)
                .setRecordSerializer(
                    KafkaRecordSerializationSchema.builder()
                        .setTopic(out)
                        .setValueSerializationSchema(new SimpleStringSchema())
                        .build())
                .build());
    JobClient job = env.executeAsync("bench-flink-latency");
    while (job.getJobStatus().get() != JobStatus.RUNNING) {
      Thread.sleep(10);
    }
    System.err.println("bench_peer: ready");
    Runtime.getRuntime().addShutdownHook(new Thread(() -> job.cancel().join()));
    job.getJobExecutionResult().exceptionally(e -> null).get();
  }

  static final class LatencyRow extends RichFlatMapFunction<String, String> {
    private transient ObjectMapper json;

    @Override
    public void open(OpenContext ctx) {
      json = new ObjectMapper();
    }

    @Override
    public void flatMap(String v, Collector<String> out) throws IOException {
      JsonNode r = json.readTree(v);
      if (r.path("id").asLong() % 10 != 7) {
        ObjectNode o = json.createObjectNode();
        o.set("id", r.get("id"));
        o.set("t", r.get("t"));
        o.set("user", r.get("user"));
        out.collect(o.toString());
      }
    }
  }

  static <T> KafkaSource<T> source(
      String brokers, String topic, KafkaRecordDeserializationSchema<T> schema) {
    return KafkaSource.<T>builder()
        .setBootstrapServers(brokers)
        .setTopics(topic)
        .setGroupId("bench-flink-" + UUID.randomUUID())
        .setStartingOffsets(OffsetsInitializer.earliest())
        .setBounded(OffsetsInitializer.latest())
        .setDeserializer(schema)
        .build();
  }

  static void w1(StreamExecutionEnvironment env, String brokers, String topic, String out) {
    env.fromSource(
            source(
                brokers, topic, KafkaRecordDeserializationSchema.valueOnly(new SimpleStringSchema())),
            WatermarkStrategy.noWatermarks(),
            "kafka")
        .flatMap(new BuysOnly())
        .sinkTo(
            FileSink.forRowFormat(new Path(out), new SimpleStringEncoder<String>("UTF-8"))
                .withBucketAssigner(new BasePathBucketAssigner<>())
                .build());
  }

  static final class BuysOnly extends RichFlatMapFunction<String, String> {
    private transient ObjectMapper json;

    @Override
    public void open(OpenContext ctx) {
      json = new ObjectMapper();
    }

    @Override
    public void flatMap(String v, Collector<String> out) throws IOException {
      JsonNode r = json.readTree(v);
      if ("buy".equals(r.path("event").asText(null))) {
        ObjectNode o = json.createObjectNode();
        o.set("user", r.get("user"));
        o.set("amount", r.get("amount"));
        out.collect(o.toString());
      }
    }
  }

  /** (user, amount, ts) parsed in the source. */
  static final class Clicks implements KafkaRecordDeserializationSchema<Tuple3<String, Double, Long>> {
    private transient ObjectMapper json;

    @Override
    public void deserialize(
        ConsumerRecord<byte[], byte[]> rec, Collector<Tuple3<String, Double, Long>> out)
        throws IOException {
      if (json == null) {
        json = new ObjectMapper();
      }
      JsonNode r = json.readTree(rec.value());
      out.collect(
          Tuple3.of(r.path("user").asText(), r.path("amount").asDouble(), r.path("ts").asLong()));
    }

    @Override
    public TypeInformation<Tuple3<String, Double, Long>> getProducedType() {
      return TypeInformation.of(new org.apache.flink.api.common.typeinfo.TypeHint<>() {});
    }
  }

  static void w2(
      StreamExecutionEnvironment env, String brokers, String topic, String redis, long watermarkMs) {
    WatermarkStrategy<Tuple3<String, Double, Long>> wm =
        WatermarkStrategy.<Tuple3<String, Double, Long>>forBoundedOutOfOrderness(
                Duration.ofMillis(watermarkMs))
            .withTimestampAssigner((c, t) -> c.f2);
    env.fromSource(source(brokers, topic, new Clicks()), wm, "kafka")
        .keyBy(c -> c.f0)
        .window(TumblingEventTimeWindows.of(Duration.ofMillis(WINDOW_MS)))
        .aggregate(new SumCount(), new WithWindow())
        .sinkTo(new RedisSink(redis));
  }

  /** sum(amount), count(). */
  static final class SumCount
      implements AggregateFunction<
          Tuple3<String, Double, Long>, Tuple2<Double, Long>, Tuple2<Double, Long>> {
    @Override
    public Tuple2<Double, Long> createAccumulator() {
      return Tuple2.of(0.0, 0L);
    }

    @Override
    public Tuple2<Double, Long> add(Tuple3<String, Double, Long> c, Tuple2<Double, Long> a) {
      return Tuple2.of(a.f0 + c.f1, a.f1 + 1);
    }

    @Override
    public Tuple2<Double, Long> getResult(Tuple2<Double, Long> a) {
      return a;
    }

    @Override
    public Tuple2<Double, Long> merge(Tuple2<Double, Long> a, Tuple2<Double, Long> b) {
      return Tuple2.of(a.f0 + b.f0, a.f1 + b.f1);
    }
  }

  /** (key "w2:start:user", total, orders). */
  static final class WithWindow
      extends ProcessWindowFunction<
          Tuple2<Double, Long>, Tuple3<String, Double, Long>, String, TimeWindow> {
    @Override
    public void process(
        String user,
        Context ctx,
        Iterable<Tuple2<Double, Long>> in,
        Collector<Tuple3<String, Double, Long>> out) {
      Tuple2<Double, Long> a = in.iterator().next();
      out.collect(Tuple3.of("w2:" + ctx.window().getStart() + ":" + user, a.f0, a.f1));
    }
  }

  /** HSET per window, pipelined; synced at every checkpoint and at the end (at least once). */
  static final class RedisSink implements Sink<Tuple3<String, Double, Long>> {
    private final String redis;

    RedisSink(String redis) {
      this.redis = redis;
    }

    @Override
    public SinkWriter<Tuple3<String, Double, Long>> createWriter(WriterInitContext ctx) {
      String[] hp = redis.split(":");
      return new SinkWriter<>() {
        final Jedis jedis = new Jedis(hp[0], Integer.parseInt(hp[1]));
        final Pipeline pipe = jedis.pipelined();
        int queued;

        @Override
        public void write(Tuple3<String, Double, Long> w, Context c) {
          Map<String, String> h = new HashMap<>();
          h.put("total", Double.toString(w.f1));
          h.put("orders", Long.toString(w.f2));
          pipe.hset(w.f0, h);
          if (++queued >= 1000) {
            flush(false);
          }
        }

        @Override
        public void flush(boolean endOfInput) {
          if (queued > 0) {
            pipe.sync();
            queued = 0;
          }
        }

        @Override
        public void close() {
          flush(true);
          pipe.close();
          jedis.close();
        }
      };
    }
  }
}
