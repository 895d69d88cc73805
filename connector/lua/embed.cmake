# Embeds connector/lua/<name>.lua into a C source (dl_lua.h's dl_lua_source), in the
# order of the dl_lua_script enum. Run with -DOUT=<file.c> -DSRC_DIR=<connector/lua>.
set(names acquire room renew requeue orphan)
set(out "/* generated from the connector/lua scripts by connector/lua/embed.cmake: do not edit */\n#include \"dl_lua.h\"\n\nconst char *const dl_lua_source[DL_LUA__COUNT] = {\n")
foreach(n ${names})
  file(READ ${SRC_DIR}/${n}.lua body)
  string(REPLACE "\\" "\\\\" body "${body}")
  string(REPLACE "\"" "\\\"" body "${body}")
  string(REPLACE "\n" "\\n\"\n    \"" body "${body}")
  string(APPEND out "    /* ${n}.lua */\n    \"${body}\",\n")
endforeach()
string(APPEND out "};\n")
file(WRITE ${OUT}.tmp "${out}")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
