# install-units.cmake - the install-time part of `cmake --install` (included
# by the install code of the top-level CMakeLists.txt, which sets the TG_*
# variables below). It runs at install time because CMAKE_INSTALL_PREFIX is
# only known then (`--prefix` may differ from the configured prefix):
#
#   - the systemd units of deploy/systemd/*.in, with @TG_BINDIR@ the installed
#     daemons' directory and @TG_CONFDIR@ the configuration directory, go to
#     <prefix>/lib/systemd/system; the daemons' user to <prefix>/lib/sysusers.d;
#   - config.example.yaml goes to the configuration directory. The live
#     config.yaml there is the operator's: it is never created or written.
#
# The configuration directory is TOLLGATE_CONFDIR if set, else
# <sysconfdir>/tollgate by GNUInstallDirs' rule: /etc for the prefixes / and
# /usr, /etc/opt/X for /opt/X, <prefix>/etc otherwise. DESTDIR is honoured
# (file(INSTALL) prepends it; the paths inside the units do not carry it).
#
# Inputs: TG_SOURCE_DIR, TG_STAGE_DIR (where the rendered units are written
# first), TG_BINDIR_REL, TG_SYSCONFDIR_REL, TG_CONFDIR_SET.

function(tg_sysconfdir out)
  set(rel "${TG_SYSCONFDIR_REL}")
  set(prefix "${CMAKE_INSTALL_PREFIX}")
  if(IS_ABSOLUTE "${rel}")
    set(dir "${rel}")
  elseif(prefix MATCHES "^/$" OR prefix MATCHES "^/usr/?$")
    set(dir "/${rel}")
  elseif(prefix MATCHES "^/opt/" AND NOT prefix MATCHES "^/opt/homebrew/")
    string(REGEX REPLACE "/$" "" prefix "${prefix}")
    set(dir "/${rel}${prefix}")
  else()
    set(dir "${prefix}/${rel}")
  endif()
  set(${out} "${dir}" PARENT_SCOPE)
endfunction()

if(IS_ABSOLUTE "${TG_BINDIR_REL}")
  set(TG_BINDIR "${TG_BINDIR_REL}")
else()
  set(TG_BINDIR "${CMAKE_INSTALL_PREFIX}/${TG_BINDIR_REL}")
endif()
if(TG_CONFDIR_SET)
  set(TG_CONFDIR "${TG_CONFDIR_SET}")
else()
  tg_sysconfdir(sysconfdir)
  set(TG_CONFDIR "${sysconfdir}/tollgate")
endif()
string(REGEX REPLACE "/+" "/" TG_BINDIR "${TG_BINDIR}")
string(REGEX REPLACE "/+" "/" TG_CONFDIR "${TG_CONFDIR}")

set(units "")
foreach(unit tollgate-proxyd.service tollgate-reportd.service tollgate-accountd@.service)
  configure_file("${TG_SOURCE_DIR}/deploy/systemd/${unit}.in" "${TG_STAGE_DIR}/${unit}" @ONLY)
  list(APPEND units "${TG_STAGE_DIR}/${unit}")
endforeach()
file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system" TYPE FILE FILES ${units})
file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/sysusers.d" TYPE FILE
     RENAME tollgate.conf FILES "${TG_SOURCE_DIR}/deploy/systemd/tollgate.sysusers")
file(INSTALL DESTINATION "${TG_CONFDIR}" TYPE FILE
     FILES "${TG_SOURCE_DIR}/deploy/config.example.yaml")
message(STATUS "Units read ${TG_CONFDIR}/config.yaml: copy config.example.yaml there "
               "and edit it (deploy/README.md)")
