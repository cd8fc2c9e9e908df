-- wrk script: after wrk's own report, print the latency distribution as
-- "pct P MS" lines (read by wrk_stats in lib.sh for the bench report).
done = function(summary, latency, requests)
	for _, p in ipairs({ 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9 }) do
		io.write(string.format("pct %g %.3f\n", p, latency:percentile(p) / 1000))
	end
end
