-- wrk script: pipeline 16 requests per write, to exercise http_server's
-- "all responses from one read leave in one write" path.
--
--   wrk -t1 -c50 -d5s -s scripts/pipeline.lua http://127.0.0.1:8080/
--
-- wrk counts each response separately, so requests/sec is responses/sec.
-- The depth can be changed with an argument: `-s scripts/pipeline.lua -- 32`.

local depth = 16

init = function(args)
   depth = tonumber(args[1]) or depth
   local requests = {}
   for i = 1, depth do
      requests[i] = wrk.format(nil, wrk.path)
   end
   batch = table.concat(requests)
end

request = function()
   return batch
end
